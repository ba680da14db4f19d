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
        let mut request = Sending::request(request);
        // A kept connection the host closed as the request went out gives
        // the request back unsent: it goes on another.
        let response = loop {
            let connection = match self.connections.take(&host) {
                Some(connection) => connection,
                None => match tokio::time::timeout(connect, self.connect(uri.clone())).await {
                    Ok(connection) => connection?,
                    Err(_) => return Err(Error::ConnectionTimeout),
                },
            };
            let exchange = connection.exchange(request, &self.connections, host.clone());
            match tokio::time::timeout(first_byte, exchange).await {
                Err(_) => return Err(Error::ConnectionReadTimeout),
                Ok(Ok(response)) => break response,
                Ok(Err(mut failed)) => match failed.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(hyper_error(failed.error())),
                },
            }
        };
        Ok(response.map(|body| ReadTimeout::new(body, between_bytes).boxed_unsync()))
    }

    /// A new connection to the host of `uri`, TLS included.
    async fn connect(&self, uri: Uri) -> Result<Connection, Error> {
        let io = (self.connector.clone().call(uri).await).map_err(|e| connect_error(&*e))?;
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
