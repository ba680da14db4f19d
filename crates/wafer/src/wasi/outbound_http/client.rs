//! How a guest's HTTP request leaves the host, for every guest ABI that
//! makes one (wasi:http 0.2 components and the 2023 preview's core
//! functions): one client per function, shared by its instances.
//!
//! wasmtime-wasi-http's own sender opens a connection for every request
//! and leaves Nagle's algorithm on, so that a request written in two
//! pieces (its head, then the end of its body) waits for the server's
//! delayed acknowledgement: 40 ms on a few percent of requests. This one
//! keeps connections to a host open between requests (up to
//! [`MAX_IDLE_PER_HOST`](super::connections::MAX_IDLE_PER_HOST), each for
//! [`IDLE_CONNECTION`](super::connections::IDLE_CONNECTION); see
//! [`super::connections`]) and sets `TCP_NODELAY`. TLS is rustls with the
//! webpki roots, as wasmtime's.

use std::error::Error as _;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::InvalidDnsNameError;
use tokio::time::{Instant, Sleep};
use tower_service::Service;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::connections::{Connection, Connections, Host, ResponseBody, Sending};

/// Each wait a guest leaves unbounded (connecting, the response's head,
/// between two pieces of its body): 600 s, as wasmtime's own sender.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// rustls with ring (named: the build has two providers) and the webpki
/// roots; built once, as it parses every root.
static TLS: LazyLock<rustls::ClientConfig> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let ring = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(ring)
        .with_safe_default_protocol_versions()
        .expect("ring has the cipher suites of rustls' default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
});

/// A function's HTTP client: connections kept per host, `TCP_NODELAY`.
/// Its clones share the connections.
#[derive(Clone)]
pub(crate) struct OutboundClient {
    connector: HttpsConnector<HttpConnector>,
    connections: Arc<Connections>,
}

impl OutboundClient {
    /// A client with no connection yet.
    pub fn new() -> OutboundClient {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        // The scheme decides, below: http, or https through rustls.
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(TLS.clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        OutboundClient {
            connector,
            connections: Arc::default(),
        }
    }

    /// Sends `request` (its URI absolute), and returns the response once
    /// its head arrived. A wait past one of `options`' timeouts fails as
    /// wasi:http says.
    ///
    /// # Errors
    ///
    /// wasi:http's error for a connection that cannot be made, a broken
    /// or malformed response, or a timeout.
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<WasiBody>, Error> {
        let options = options.unwrap_or_default();
        let connect = options.connect_timeout.unwrap_or(DEFAULT_TIMEOUT);
        let first_byte = options.first_byte_timeout.unwrap_or(DEFAULT_TIMEOUT);
        let between_bytes = options.between_bytes_timeout.unwrap_or(DEFAULT_TIMEOUT);
        let uri = request.uri().clone();
        let host = Host::of(&uri).ok_or(Error::HttpRequestUriInvalid)?;
        let mut request = Sending::request(request)?;
        let response = loop {
            let (connection, kept) = match self.connections.take(&host) {
                Some(connection) => (connection, true),
                None => match tokio::time::timeout(connect, self.connect(uri.clone())).await {
                    Ok(connection) => (connection?, false),
                    Err(_) => return Err(Error::ConnectionTimeout),
                },
            };
            let exchange = connection.exchange(request, &self.connections, host.clone());
            match tokio::time::timeout(first_byte, exchange).await {
                Err(_) => return Err(Error::ConnectionReadTimeout),
                Ok(Ok(response)) => break response,
                Ok(Err(mut failed)) => match failed.take_message() {
                    // A kept connection its host closed as the request
                    // went: the request goes on another. A new one that
                    // closed at once fails it (it would again).
                    Some(unsent) if kept => request = unsent,
                    _ => return Err(hyper_error(failed.error())),
                },
            }
        };
        Ok(response.map(|body| ReadTimeout::new(body, between_bytes).boxed_unsync()))
    }

    /// A new connection to the host of `uri`, TLS included.
    async fn connect(&self, uri: Uri) -> Result<Connection, Error> {
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(|e| connect_error(&*e))?;
        let io = (connector.call(uri).await).map_err(|e| connect_error(&*e))?;
        Connection::handshake(io).await.map_err(|e| hyper_error(&e))
    }
}

/// wasi:http's error for a connection that could not be made, from the
/// causes the connector gives.
fn connect_error(error: &(dyn std::error::Error + 'static)) -> Error {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if current.is::<InvalidDnsNameError>() {
            return Error::DnsError {
                rcode: Some("invalid dns name".to_string()),
                info_code: None,
            };
        }
        if let Some(io) = current.downcast_ref::<io::Error>() {
            if let Some(tls) = rustls_error(io) {
                return tls_error(tls);
            }
            // The message is kept: wasmtime reads a failed name lookup
            // from it.
            return Error::Connect(io::Error::new(io.kind(), io.to_string()));
        }
        cause = current.source();
    }
    Error::Connect(io::Error::other(error.to_string()))
}

/// The TLS failure inside `error`, however deep: hyper-rustls wraps
/// tokio-rustls' I/O error, which holds rustls' (an I/O error's `source`
/// skips the error it holds, so the chain is walked by `get_ref`).
fn rustls_error(error: &io::Error) -> Option<&rustls::Error> {
    let mut inner = error.get_ref()?;
    loop {
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        inner = inner.downcast_ref::<io::Error>()?.get_ref()?;
    }
}

fn tls_error(error: &rustls::Error) -> Error {
    match error {
        rustls::Error::InvalidCertificate(_) => Error::TlsCertificateError,
        rustls::Error::AlertReceived(alert) => Error::TlsAlertReceived {
            alert_id: Some(u8::from(*alert)),
            alert_message: Some(format!("{alert:?}")),
        },
        _ => Error::TlsProtocolError,
    }
}

/// What wasi:http calls a failure hyper reports by reference only: a TLS
/// failure (an alert after the handshake) as TLS says, a connection the
/// host closed or reset as terminated, an answer that is not HTTP as a
/// protocol error.
fn hyper_error(error: &hyper::Error) -> Error {
    let io = error
        .source()
        .and_then(|cause| cause.downcast_ref::<io::Error>());
    if error.is_timeout() {
        Error::HttpResponseTimeout
    } else if let Some(tls) = io.and_then(rustls_error) {
        tls_error(tls)
    } else if error.is_incomplete_message() {
        Error::HttpResponseIncomplete
    } else if error.is_closed() || error.is_canceled() || io.is_some() {
        Error::ConnectionTerminated
    } else {
        Error::HttpProtocolError
    }
}

/// A response body that fails with wasi:http's read timeout when no piece
/// of it arrives in time.
struct ReadTimeout<B = ResponseBody> {
    incoming: B,
    between_bytes: Duration,
    /// When the last piece arrived (or the head): the wait counts from it.
    last: Instant,
    /// Fires at the end of the wait or before it. A piece that arrives
    /// leaves it alone, and it is moved on only when it fires early: each
    /// move takes the timer wheel's lock and may wake the thread that
    /// drives it.
    idle: Pin<Box<Sleep>>,
}

impl<B> ReadTimeout<B> {
    fn new(incoming: B, between_bytes: Duration) -> ReadTimeout<B> {
        let last = Instant::now();
        ReadTimeout {
            incoming,
            between_bytes,
            last,
            idle: Box::pin(tokio::time::sleep_until(after(last, between_bytes))),
        }
    }
}

/// `wait` from `start`; a wait too long for the clock is as good as
/// forever.
fn after(start: Instant, wait: Duration) -> Instant {
    start
        .checked_add(wait)
        .unwrap_or_else(|| start + Duration::from_secs(86_400 * 365))
}

impl<B> Body for ReadTimeout<B>
where
    B: Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.last = Instant::now();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) if e.is_timeout() => {
                Poll::Ready(Some(Err(Error::HttpResponseTimeout)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::Hyper(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => loop {
                ready!(this.idle.as_mut().poll(cx));
                let due = after(this.last, this.between_bytes);
                if Instant::now() >= due {
                    return Poll::Ready(Some(Err(Error::ConnectionReadTimeout)));
                }
                this.idle.as_mut().reset(due);
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::mpsc;

    /// A local server on its own threads, handling each connection it
    /// accepts with `serve`; and how many it has accepted.
    fn server(serve: fn(std::net::TcpStream)) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || serve(stream));
            }
        });
        (addr, accepted)
    }

    /// Answers `ok` to each request on `stream` (reading its
    /// `Content-Length` body) until the client closes it.
    fn answer_ok(stream: std::net::TcpStream) {
        answer(stream, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    }

    /// Answers `ok`, chunked, with a trailer.
    fn answer_with_trailers(stream: std::net::TcpStream) {
        answer(
            stream,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nx-t: 1\r\n\r\n",
        );
    }

    /// Answers each request on `stream` (its `Content-Length` body read)
    /// with `response`, until the client closes it.
    fn answer(stream: std::net::TcpStream, response: &[u8]) {
        let mut reader = BufReader::new(&stream);
        loop {
            let mut length = 0;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = n.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            (&stream).write_all(response).unwrap();
        }
    }

    /// A body of `Content-Length` bytes that, as wasmtime's outgoing body,
    /// never says it has ended.
    struct Declared(Option<&'static str>);

    impl Body for Declared {
        type Data = Bytes;
        type Error = Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
            match self.0.take() {
                Some(piece) => Poll::Ready(Some(Ok(Frame::data(Bytes::from(piece))))),
                None => Poll::Pending,
            }
        }
    }

    fn post(addr: &str, body: &'static str) -> http::Request<WasiBody> {
        http::Request::post(format!("http://{addr}/submit"))
            .header("content-length", body.len())
            .body(Declared(Some(body)).boxed_unsync())
            .unwrap()
    }

    #[tokio::test]
    async fn requests_with_a_declared_length_go_on_one_kept_connection() {
        let (addr, accepted) = server(answer_ok);
        let client = OutboundClient::new();
        for _ in 0..3 {
            let response = client.send(post(&addr, "hello"), None).await.unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_read_to_its_trailers_keeps_its_connection() {
        let (addr, accepted) = server(answer_with_trailers);
        let client = OutboundClient::new();
        for _ in 0..3 {
            let mut body = client
                .send(post(&addr, ""), None)
                .await
                .unwrap()
                .into_body();
            // As wasmtime's reader does: the body is dropped once its
            // trailers have come, never asked for its end.
            let mut trailers = None;
            while trailers.is_none() {
                let frame = body.frame().await.unwrap().unwrap();
                trailers = frame.into_trailers().ok();
            }
            assert_eq!(trailers.unwrap()["x-t"], "1");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_new_connection_that_closes_at_once_fails_the_request() {
        let (addr, accepted) = server(drop);
        let client = OutboundClient::new();
        let failed = client.send(post(&addr, "hello"), None).await.unwrap_err();
        assert!(
            matches!(
                failed,
                Error::ConnectionTerminated | Error::HttpResponseIncomplete
            ),
            "{failed:?}"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    /// A body whose pieces the test sends.
    struct Pieces(mpsc::UnboundedReceiver<&'static str>);

    impl Body for Pieces {
        type Data = Bytes;
        type Error = hyper::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
            (self.0.poll_recv(cx)).map(|piece| Some(Ok(Frame::data(Bytes::from(piece?)))))
        }
    }

    #[tokio::test]
    async fn a_body_fails_once_no_piece_came_for_the_whole_wait() {
        let wait = Duration::from_secs(3);
        let (send, pieces) = mpsc::unbounded_channel();
        let mut body = ReadTimeout::new(Pieces(pieces), wait);
        tokio::spawn(async move {
            for piece in ["a", "b", "c", "d"] {
                tokio::time::sleep(Duration::from_secs(1)).await;
                send.send(piece).unwrap();
            }
            // Then nothing more, the body still open.
            std::future::pending::<()>().await;
        });
        // Past the wait the body started with, but each piece within it
        // of the one before.
        let mut last = Instant::now();
        for piece in ["a", "b", "c", "d"] {
            last = Instant::now();
            let frame = body.frame().await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap(), piece);
        }
        // `last` is before the last piece came: the wait counts from after.
        let failed = body.frame().await.unwrap().unwrap_err();
        assert!(matches!(failed, Error::ConnectionReadTimeout), "{failed:?}");
        assert!(last.elapsed() >= wait);
    }
}
