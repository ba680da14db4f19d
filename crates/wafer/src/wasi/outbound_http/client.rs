//! How a guest's HTTP request leaves the host, for every guest ABI that
//! makes one (wasi:http 0.2 components and the 2023 preview's core
//! functions): one client per function, shared by its instances.
//!
//! wasmtime-wasi-http's own sender opens a connection for every request
//! and leaves Nagle's algorithm on, so that a request written in two
//! pieces (its head, then the end of its body) waits for the server's
//! delayed acknowledgement: 40 ms on a few percent of requests. This one
//! keeps connections to a host open between requests (up to
//! [`MAX_IDLE_PER_HOST`], each for [`IDLE_CONNECTION`]) and sets
//! `TCP_NODELAY`. TLS is rustls with the
//! webpki roots, as wasmtime's.

use std::error::Error as _;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{HttpConnector, capture_connection};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::InvalidDnsNameError;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// Each wait a guest leaves unbounded (connecting, the response's head,
/// between two pieces of its body): 600 s, as wasmtime's own sender.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a connection is kept for the next request to its host: 30 s.
const IDLE_CONNECTION: Duration = Duration::from_secs(30);

/// The most idle connections kept per host: 32 (the rest close once
/// their response is read).
const MAX_IDLE_PER_HOST: usize = 32;

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
    client: Client<HttpsConnector<HttpConnector>, WasiBody>,
}

impl OutboundClient {
    /// A client with no connection yet.
    pub fn new() -> OutboundClient {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        // The scheme decides, below: http, or https through rustls.
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(TLS.clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            // The timer closes idle connections when their time is up, not
            // only when a request finds them.
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_CONNECTION)
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .build(https);
        OutboundClient { client }
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
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<WasiBody>, Error> {
        let options = options.unwrap_or_default();
        let connect = options.connect_timeout.unwrap_or(DEFAULT_TIMEOUT);
        let first_byte = options.first_byte_timeout.unwrap_or(DEFAULT_TIMEOUT);
        let between_bytes = options.between_bytes_timeout.unwrap_or(DEFAULT_TIMEOUT);
        let mut connection = capture_connection(&mut request);
        let response = self.client.request(request);
        let mut response = std::pin::pin!(response);
        // A connection (an idle one, or a new one, TLS included) within the
        // connect timeout, then the head within the first-byte timeout.
        let connected = tokio::time::timeout(connect, async {
            tokio::select! {
                biased;
                done = &mut response => Some(done),
                _ = connection.wait_for_connection_metadata() => None,
            }
        })
        .await;
        let done = match connected {
            Err(_) => return Err(Error::ConnectionTimeout),
            Ok(Some(done)) => done,
            Ok(None) => match tokio::time::timeout(first_byte, response).await {
                Ok(done) => done,
                Err(_) => return Err(Error::ConnectionReadTimeout),
            },
        };
        let response = done.map_err(|e| request_error(&e))?;
        Ok(response.map(|incoming| ResponseBody::new(incoming, between_bytes).boxed_unsync()))
    }
}

/// wasi:http's error for a request that got no response, from the causes
/// the client gives.
fn request_error(error: &hyper_util::client::legacy::Error) -> Error {
    let mut cause = error.source();
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
            if error.is_connect() {
                // The message is kept: wasmtime reads a failed name lookup
                // from it.
                return Error::Connect(io::Error::new(io.kind(), io.to_string()));
            }
        }
        if let Some(hyper) = current.downcast_ref::<hyper::Error>() {
            return hyper_error(hyper);
        }
        cause = current.source();
    }
    if error.is_connect() {
        Error::Connect(io::Error::other(error.to_string()))
    } else {
        Error::HttpProtocolError
    }
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

/// What wasi:http calls a failure hyper reports by reference only.
fn hyper_error(error: &hyper::Error) -> Error {
    if error.is_timeout() {
        Error::HttpResponseTimeout
    } else if error.is_incomplete_message() {
        Error::HttpResponseIncomplete
    } else if error.is_closed() || error.is_canceled() {
        Error::ConnectionTerminated
    } else {
        Error::HttpProtocolError
    }
}

/// A response body that fails with wasi:http's read timeout when no piece
/// of it arrives in time.
struct ResponseBody<B = Incoming> {
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

impl<B> ResponseBody<B> {
    fn new(incoming: B, between_bytes: Duration) -> ResponseBody<B> {
        let last = Instant::now();
        ResponseBody {
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

impl<B> Body for ResponseBody<B>
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
    use tokio::sync::mpsc;

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
        let mut body = ResponseBody::new(Pieces(pieces), wait);
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
