//! The connections a function's client keeps open to the hosts it calls:
//! HTTP/1.1, one request at a time each, driven by whoever uses them. The
//! task that sends a request drives its connection until the response's
//! head arrives; the reader of the response body drives it on, and gives
//! it back to be kept once the body has ended.
//!
//! hyper's pooled client gives each connection a task of its own, and
//! spawns another for each response to put its connection back: every
//! hop between those tasks and the caller's is a wake-up, often of
//! another worker thread (BENCHMARKS.md, wasi:http). Here a call crosses
//! no task of the client's while all goes as usual.
//!
//! A connection still has work of its own to finish in three cases, and
//! then gets a task that finishes it and closes it: the response's head
//! arrived before hyper took the whole request body (a server that
//! answers before reading it all, while the guest may still be writing
//! it), the response ended before the request had all gone out, or the
//! response body was dropped before its end.
//!
//! A request goes again on another connection only when it went on a kept
//! one that had closed, and hyper gives it back unsent: a new connection
//! that closes at once fails the request, as hyper's pooled client does.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Method, Request, Response, Uri, header};
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
    /// `http` or `https`.
    scheme: Scheme,
    /// The host and port (any user name is refused before a request gets
    /// here).
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
    /// Where requests go in.
    sender: http1::SendRequest<Sending>,
    /// The connection's I/O; `None` once it has ended. It is dropped then:
    /// a request queued in it and never taken is given back by the drop.
    driver: Option<http1::Connection<Io, Sending>>,
}

impl Connection {
    /// HTTP/1.1 over `io`, just opened.
    pub async fn handshake(io: Io) -> hyper::Result<Connection> {
        let (sender, driver) = http1::handshake(io).await?;
        Ok(Connection {
            sender,
            driver: Some(driver),
        })
    }

    /// Lets the connection read and write what it can; false once it has
    /// ended.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(driver) = self.driver.as_mut()
            && Pin::new(driver).poll(cx).is_ready()
        {
            self.driver = None;
        }
        self.driver.is_some()
    }

    /// Whether a request may go on this connection now (it has not closed,
    /// and its last exchange is over). Polls without a waker: an idle
    /// connection wakes nobody.
    fn is_ready(&mut self) -> bool {
        self.drive(&mut Context::from_waker(Waker::noop())) && self.sender.is_ready()
    }

    /// Lets the connection finish what it has started (writing a request,
    /// reading a response) in a task of its own, then close.
    fn finish_alone(self) {
        // Without its sender the connection closes once idle.
        if let Some(driver) = self.driver
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(driver);
        }
    }

    /// Sends `request` (made by [`Sending::request`]) and drives the
    /// connection until the response's head has arrived; then the body
    /// reads on from the connection, which goes back to `connections` once
    /// the body has ended. A request that never went out (the connection
    /// had closed) is given back in the error.
    pub async fn exchange(
        mut self,
        request: Request<Sending>,
        connections: &Arc<Connections>,
        host: Host,
    ) -> Result<Response<ResponseBody>, TrySendError<Request<Sending>>> {
        let taken = request.body().taken.clone();
        let mut response = std::pin::pin!(self.sender.try_send_request(request));
        let response = poll_fn(|cx| {
            self.drive(cx);
            response.as_mut().poll(cx)
        })
        .await?;
        let connection = if taken.load(Ordering::Acquire) {
            Some(self)
        } else {
            // The guest may be waiting to write more of the body before
            // it reads the response: the connection must take it alone.
            self.finish_alone();
            None
        };
        let connections = Arc::downgrade(connections);
        Ok(response.map(|incoming| ResponseBody {
            incoming,
            connection,
            connections,
            host,
        }))
    }
}

/// A request body that records when hyper has taken all of it: it polled
/// the body to its end, or dropped it (which hyper does once it has
/// written a body's declared `Content-Length`, and when the request
/// fails).
pub(super) struct Sending {
    /// The guest's body.
    body: WasiBody,
    /// Set once hyper no longer holds the body.
    taken: Arc<AtomicBool>,
}

impl Sending {
    /// `request` as it goes on a connection: its target in origin form
    /// (`/path?query`), with a `Host` header. `CONNECT` is refused: the
    /// connection is for HTTP requests, not a tunnel.
    pub fn request(request: Request<WasiBody>) -> Result<Request<Sending>, Error> {
        let (mut parts, body) = request.into_parts();
        if parts.method == Method::CONNECT {
            return Err(Error::HttpRequestMethodInvalid);
        }
        if !parts.headers.contains_key(header::HOST)
            && let Some(host) = host_header(&parts.uri)
        {
            parts.headers.insert(header::HOST, host);
        }
        let target =
            (parts.uri.path_and_query().cloned()).unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(target);
        let taken = Arc::new(AtomicBool::new(body.is_end_stream()));
        Ok(Request::from_parts(parts, Sending { body, taken }))
    }
}

/// The `Host` header for `uri`: its host, and its port unless the scheme's
/// own.
fn host_header(uri: &Uri) -> Option<HeaderValue> {
    let host = uri.host()?;
    let default = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    let value = match uri.port_u16() {
        Some(port) if port != default => format!("{host}:{port}"),
        _ => host.to_string(),
    };
    HeaderValue::from_str(&value).ok()
}

impl Drop for Sending {
    fn drop(&mut self) {
        self.taken.store(true, Ordering::Release);
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
            self.taken.store(true, Ordering::Release);
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
    /// The body as hyper reads it.
    incoming: Incoming,
    /// The connection, while this body drives it.
    connection: Option<Connection>,
    /// Where the connection goes once the body has ended.
    connections: Weak<Connections>,
    /// The host it is kept for.
    host: Host,
}

impl ResponseBody {
    /// Gives the connection back once the body has ended, if it is ready
    /// for another request; else lets it finish alone (its request may not
    /// all have gone out).
    fn ended(&mut self) {
        let Some(mut connection) = self.connection.take() else {
            return;
        };
        match self.connections.upgrade() {
            Some(connections) if connection.is_ready() => {
                connections.put(self.host.clone(), connection)
            }
            _ => connection.finish_alone(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if self.incoming.is_end_stream() {
            self.ended();
        } else if let Some(connection) = self.connection.take() {
            connection.finish_alone();
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
            // Trailers are a body's last frame.
            Some(Ok(frame)) if frame.is_data() && !this.incoming.is_end_stream() => {}
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
    /// The connections waiting for a request, the most recently used last.
    idle: Mutex<HashMap<Host, Vec<Idle>>>,
    /// Whether a task closes the connections idle too long.
    reaping: AtomicBool,
}

/// A connection waiting for its next request.
struct Idle {
    connection: Connection,
    /// When it went idle.
    since: Instant,
}

impl Idle {
    /// Whether it may still take a request.
    fn is_usable(&mut self) -> bool {
        self.since.elapsed() < IDLE_CONNECTION && self.connection.is_ready()
    }
}

impl Connections {
    /// An idle connection to `host` that may take a request now, the most
    /// recently used first.
    pub fn take(&self, host: &Host) -> Option<Connection> {
        loop {
            // Checked outside the lock: the check reads the socket.
            let mut idle = self.idle.lock().get_mut(host)?.pop()?;
            if idle.is_usable() {
                return Some(idle.connection);
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
        if !self.reaping.load(Ordering::Acquire)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
            && !self.reaping.swap(true, Ordering::AcqRel)
        {
            // The claim goes with the task, dropped with it even if it
            // never runs.
            runtime.spawn(reap(Reaping(Arc::downgrade(self))));
        }
    }

    /// Closes the connections idle too long; how many are left. Only their
    /// age is checked, under the lock (one closed by its host is found by
    /// [`Connections::take`]); they are closed outside it.
    fn prune(&self) -> usize {
        let mut expired = Vec::new();
        let mut hosts = self.idle.lock();
        hosts.retain(|_, kept| {
            // Oldest first: those past their time are a prefix.
            let old = kept.partition_point(|idle| idle.since.elapsed() >= IDLE_CONNECTION);
            expired.extend(kept.drain(..old));
            !kept.is_empty()
        });
        let left = hosts.values().map(Vec::len).sum();
        drop(hosts);
        drop(expired);
        left
    }
}

/// The reaper's claim on its [`Connections`]: given up when the reaper
/// ends, however it ends (its runtime may shut down), so that a later put
/// starts another.
struct Reaping(Weak<Connections>);

impl Drop for Reaping {
    fn drop(&mut self) {
        if let Some(connections) = self.0.upgrade() {
            connections.reaping.store(false, Ordering::Release);
        }
    }
}

/// Closes idle connections as their time runs out, while there are any.
async fn reap(claim: Reaping) {
    let connections = claim.0.clone();
    let mut claim = Some(claim);
    loop {
        tokio::time::sleep(IDLE_CONNECTION / 4).await;
        let Some(kept) = connections.upgrade() else {
            return;
        };
        if kept.prune() > 0 {
            continue;
        }
        // None left. A connection put before the claim is given up finds
        // it still held and starts no reaper: look once more after.
        drop(claim.take());
        if kept.prune() == 0 || kept.reaping.swap(true, Ordering::AcqRel) {
            return;
        }
        claim = Some(Reaping(connections.clone()));
    }
}
