//! The connections a function's client keeps open to the hosts it calls:
//! HTTP/1.1, one request at a time each, driven by whoever uses them. The
//! task that sends a request drives its connection until the response's
//! head arrives; the reader of the response body drives it on, and gives
//! it back to be kept once the body has ended.
//!
//! hyper's pooled client gives each connection a task of its own, and
//! spawns another for each response to put its connection back: every
//! hop between those tasks and the caller's is a wake-up, often of
//! another worker thread, and one outbound call cost over twice a plain
//! client's request (BENCHMARKS.md, wasi:http). Here a call crosses no
//! task of the client's.
//!
//! Two cases still get a task: a connection whose request body is still
//! being sent when the response's head arrives (a server that answers
//! before reading it all; the guest may be waiting to write more before
//! it reads) is driven by one of its own, and is not kept. A response body
//! dropped before its end closes its connection.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, header};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1};
use hyper_rustls::MaybeHttpsStream;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::time::Instant;
use wasmtime_wasi_http::{Error, WasiBody};

/// How long a connection is kept for the next request to its host: 30 s.
pub(super) const IDLE_CONNECTION: Duration = Duration::from_secs(30);

/// The most idle connections kept per host: 32 (the rest close once
/// their response is read).
pub(super) const MAX_IDLE_PER_HOST: usize = 32;

/// A connection's transport: TCP, or TLS over it.
pub(super) type Io = MaybeHttpsStream<TokioIo<TcpStream>>;

/// Where a connection goes: a scheme and an authority.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Host {
    scheme: Scheme,
    authority: Authority,
}

impl Host {
    /// The host of an absolute `uri`; `None` for a relative one.
    pub fn of(uri: &Uri) -> Option<Host> {
        Some(Host {
            scheme: uri.scheme()?.clone(),
            authority: uri.authority()?.clone(),
        })
    }
}

/// An open connection: the handle requests go in by, and the future that
/// reads and writes the connection (nothing moves unless it is polled).
pub(super) struct Connection {
    sender: http1::SendRequest<Sending>,
    driver: http1::Connection<Io, Sending>,
    closed: bool,
}

impl Connection {
    /// HTTP/1.1 over `io`, just opened.
    pub async fn handshake(io: Io) -> hyper::Result<Connection> {
        let (sender, driver) = http1::handshake(io).await?;
        Ok(Connection {
            sender,
            driver,
            closed: false,
        })
    }

    /// Lets the connection read and write what it can; false once it has
    /// closed.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.closed && Pin::new(&mut self.driver).poll(cx).is_ready() {
            self.closed = true;
        }
        !self.closed
    }

    /// Whether a request may go on this connection now (it has not closed,
    /// and its last exchange is over). Polls without a waker: an idle
    /// connection wakes nobody.
    fn is_ready(&mut self) -> bool {
        self.drive(&mut Context::from_waker(Waker::noop())) && self.sender.is_ready()
    }

    /// Sends `request` (made by [`Sending::request`]) and drives the
    /// connection until the response's head has arrived; then the body
    /// reads on from the connection, which goes back to `connections` once
    /// the body has ended. A request that never went out (the connection
    /// had closed) is given back in the error, to send on another.
    pub async fn exchange(
        mut self,
        request: Request<Sending>,
        connections: &Arc<Connections>,
        host: Host,
    ) -> Result<Response<ResponseBody>, TrySendError<Request<Sending>>> {
        let sent = request.body().sent.clone();
        let mut response = std::pin::pin!(self.sender.try_send_request(request));
        let response = poll_fn(|cx| {
            self.drive(cx);
            response.as_mut().poll(cx)
        })
        .await?;
        let connection = if sent.load(Ordering::Acquire) {
            Some(self)
        } else {
            // Dropping the sender lets the connection close once this
            // exchange is over.
            tokio::spawn(self.driver);
            None
        };
        let kept = (Arc::downgrade(connections), host);
        Ok(response.map(|incoming| ResponseBody {
            incoming,
            connection,
            kept: Some(kept),
        }))
    }
}

/// A request body that records when it has been sent whole.
pub(super) struct Sending {
    body: WasiBody,
    sent: Arc<AtomicBool>,
}

impl Sending {
    /// `request` as it goes on a connection: its target in origin form
    /// (`/path?query`), with a `Host` header.
    pub fn request(request: Request<WasiBody>) -> Request<Sending> {
        let (mut parts, body) = request.into_parts();
        if let Some(authority) = parts.uri.authority()
            && !parts.headers.contains_key(header::HOST)
            && let Ok(host) = HeaderValue::from_str(authority.as_str())
        {
            parts.headers.insert(header::HOST, host);
        }
        let target =
            (parts.uri.path_and_query().cloned()).unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(target);
        let sent = Arc::new(AtomicBool::new(body.is_end_stream()));
        Request::from_parts(parts, Sending { body, sent })
    }
}

impl Body for Sending {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        if frame.is_none() || self.body.is_end_stream() {
            self.sent.store(true, Ordering::Release);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A response body, read from the connection it drives; the connection is
/// kept once the body has ended whole.
pub(super) struct ResponseBody {
    incoming: Incoming,
    connection: Option<Connection>,
    /// Where the connection goes once the body has ended.
    kept: Option<(Weak<Connections>, Host)>,
}

impl ResponseBody {
    /// Gives the connection back once the body has ended, if the
    /// connection is ready for another request.
    fn ended(&mut self) {
        let (Some(mut connection), Some((connections, host))) =
            (self.connection.take(), self.kept.take())
        else {
            return;
        };
        if let Some(connections) = connections.upgrade()
            && connection.is_ready()
        {
            connections.put(host, connection);
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let frame = match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                // Let the connection read what it has for the body, then
                // look again.
                let Some(connection) = this.connection.as_mut() else {
                    return Poll::Pending;
                };
                if !connection.drive(cx) {
                    this.connection = None;
                }
                ready!(Pin::new(&mut this.incoming).poll_frame(cx))
            }
        };
        match &frame {
            Some(Ok(_)) if !this.incoming.is_end_stream() => {}
            Some(Err(_)) => this.connection = None,
            _ => this.ended(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

/// The idle connections of one client, by host.
#[derive(Default)]
pub(super) struct Connections {
    idle: Mutex<HashMap<Host, Vec<Idle>>>,
    /// Whether a task closes the connections idle too long.
    reaping: AtomicBool,
}

struct Idle {
    connection: Connection,
    since: Instant,
}

impl Connections {
    /// An idle connection to `host` that may take a request now, the most
    /// recently used first.
    pub fn take(&self, host: &Host) -> Option<Connection> {
        loop {
            let Idle {
                mut connection,
                since,
            } = self.idle.lock().get_mut(host)?.pop()?;
            if since.elapsed() < IDLE_CONNECTION && connection.is_ready() {
                return Some(connection);
            }
        }
    }

    /// Keeps `connection` for the next request to `host`, unless as many
    /// are kept already.
    fn put(self: &Arc<Self>, host: Host, connection: Connection) {
        let idle = Idle {
            connection,
            since: Instant::now(),
        };
        let refused = {
            let mut hosts = self.idle.lock();
            let kept = hosts.entry(host).or_default();
            if kept.len() < MAX_IDLE_PER_HOST {
                kept.push(idle);
                None
            } else {
                Some(idle)
            }
        };
        // Closed outside the lock.
        drop(refused);
        if !self.reaping.swap(true, Ordering::AcqRel)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(reap(Arc::downgrade(self)));
        }
    }

    /// Closes the connections idle too long or closed by their host; how
    /// many are left.
    fn prune(&self) -> usize {
        let mut hosts = self.idle.lock();
        hosts.retain(|_, kept| {
            kept.retain_mut(|idle| {
                idle.since.elapsed() < IDLE_CONNECTION && idle.connection.is_ready()
            });
            !kept.is_empty()
        });
        hosts.values().map(Vec::len).sum()
    }
}

/// Closes idle connections as their time runs out, while there are any.
async fn reap(connections: Weak<Connections>) {
    loop {
        tokio::time::sleep(IDLE_CONNECTION / 4).await;
        let Some(connections) = connections.upgrade() else {
            return;
        };
        if connections.prune() == 0 {
            connections.reaping.store(false, Ordering::Release);
            // One put since the count started no reaper: this one goes on.
            if connections.prune() == 0 || connections.reaping.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }
}
