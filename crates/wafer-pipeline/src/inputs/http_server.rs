//! `http_server`: every request to `path` is a message (its body), as in
//! Benthos' `http_server` input, and is answered once the pipeline's output
//! has it.
//!
//! * `address` (default `0.0.0.0:4195`): where to listen. Benthos' empty
//!   default means its process-wide HTTP server on `0.0.0.0:4195`; wafer
//!   has none, so each input listens on an address of its own, and `""`
//!   means `0.0.0.0:4195`. `:PORT` is every interface, as in Go; port 0
//!   takes a free port, logged in the readiness line.
//! * `path` (default `/post`): the endpoint; a path ending in `/` takes
//!   every path under it. Other paths answer 404.
//! * `allowed_verbs` (default `[POST]`): other methods answer 405.
//! * `timeout` (default `5s`): how long a request waits for the output.
//! * `max_concurrent_requests` (default 1024), a wafer extension named as
//!   for wafer's HTTP service: how many requests are answered at once. A
//!   request waiting for the output holds its body (up to 16 MiB), so a
//!   request over the limit is answered 503 with `Retry-After: 1` at
//!   once, before its body is read.
//!
//! Answers, as Benthos gives them: 200 (empty body) once the output
//! confirmed the message; 502 with the output's error when it failed (or
//! when the pipeline could not finish the message); 408 when `timeout`
//! passed first (the message may still be delivered); 503 when the
//! pipeline is stopping; 413 for a body over 16 MiB. And 503 with
//! `Retry-After: 1` over `max_concurrent_requests`.
//!
//! The socket is bound when the input is built, so that a busy address is
//! a config problem; a build that only checks the config
//! ([`crate::BuildContext::check_only`]) checks that the address resolves
//! and binds nothing.
//!
//! Each message carries Benthos' metadata: `http_server_verb`,
//! `http_server_request_path`, `http_server_user_agent`,
//! `http_server_remote_ip`, every header's first value under its
//! canonical name (`Content-Type`, as Go writes it) and every query
//! parameter's first value. Not supported: multipart bodies split into a
//! batch (the whole body is one message), path parameters, websockets,
//! TLS, CORS, rate limits and `sync_response`.

use std::collections::{BTreeMap, BTreeSet};
use std::future::IntoFuture;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc, oneshot};
use wafer::{Message, Metadata};

use super::Input;
use crate::config::duration::GoDuration;
use crate::config::{ComponentConfig, ComponentError};
use crate::{BoxFuture, BuildContext, Sink};

/// Where an input listens when its config gives no `address`: the address
/// of Benthos' process-wide HTTP server, which Benthos' default means.
pub const DEFAULT_ADDRESS: &str = "0.0.0.0:4195";

/// The largest body a request may send: 16 MiB, as to wafer's HTTP
/// service. A larger one is answered 413.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// How long a client may take to send its body: 30 s, as to wafer's HTTP
/// service. A slower one is answered 408.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// `max_concurrent_requests` when the config gives none: as for wafer's
/// HTTP service.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpServerConfig {
    #[serde(default = "default_address")]
    address: String,
    #[serde(default = "default_path")]
    path: String,
    #[serde(default = "default_verbs")]
    allowed_verbs: Vec<String>,
    #[serde(default = "default_timeout")]
    timeout: GoDuration,
    #[serde(default = "default_max_concurrent_requests")]
    max_concurrent_requests: usize,
}

fn default_address() -> String {
    DEFAULT_ADDRESS.into()
}

fn default_path() -> String {
    "/post".into()
}

fn default_verbs() -> Vec<String> {
    vec!["POST".into()]
}

fn default_timeout() -> GoDuration {
    GoDuration::of("5s")
}

fn default_max_concurrent_requests() -> usize {
    DEFAULT_MAX_CONCURRENT_REQUESTS
}

/// A built input: its socket is already bound, so that a busy address is
/// a config problem rather than a failure once running; `None` when it
/// was built only to be checked.
struct HttpServer {
    pipeline: String,
    name: String,
    listener: Option<std::net::TcpListener>,
    path: String,
    verbs: BTreeSet<String>,
    timeout: Duration,
    max_concurrent_requests: usize,
}

/// What each request is checked against, and where its message goes.
struct Endpoint {
    name: String,
    path: String,
    verbs: BTreeSet<String>,
    timeout: Duration,
    /// One per request being answered: `max_concurrent_requests`.
    answering: Semaphore,
    max_concurrent_requests: usize,
    relay: mpsc::Sender<Delivery>,
}

/// A message on its way from a request to the pipeline; `queued` gets
/// the receiver of its acknowledgement once the pipeline took it, and is
/// dropped when the pipeline no longer takes messages.
struct Delivery {
    message: Message,
    queued: oneshot::Sender<oneshot::Receiver<Result<(), String>>>,
}

pub(super) fn build(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Input>, ComponentError> {
    let parsed: HttpServerConfig = config.parse()?;
    if !parsed.path.starts_with('/') {
        return Err(ComponentError::invalid(
            "path",
            format!("a path starts with `/`, not `{}`", parsed.path),
        ));
    }
    if parsed.path.contains('{') {
        return Err(ComponentError::invalid(
            "path",
            format!(
                "wafer does not support path parameters (`{}`): give a fixed path, or one ending in `/` for every path under it",
                parsed.path
            ),
        ));
    }
    if parsed.allowed_verbs.is_empty() {
        return Err(ComponentError::invalid(
            "allowed_verbs",
            "at least one verb is needed, like `[POST]`",
        ));
    }
    if let Some(bad) = parsed
        .allowed_verbs
        .iter()
        .find(|verb| Method::from_bytes(verb.as_bytes()).is_err())
    {
        return Err(ComponentError::invalid(
            "allowed_verbs",
            format!("`{bad}` is not an HTTP method"),
        ));
    }
    if parsed.timeout.0.is_zero() {
        return Err(ComponentError::invalid(
            "timeout",
            "a timeout above zero, like `5s`",
        ));
    }
    if !(1..=Semaphore::MAX_PERMITS).contains(&parsed.max_concurrent_requests) {
        return Err(ComponentError::invalid(
            "max_concurrent_requests",
            format!("from 1 to {}", Semaphore::MAX_PERMITS),
        ));
    }
    let address = match parsed.address.trim() {
        "" => DEFAULT_ADDRESS.to_string(),
        // Go's `:4195`: every interface.
        port if port.starts_with(':') => format!("0.0.0.0{port}"),
        address => address.to_string(),
    };
    let cannot = |e: std::io::Error| {
        ComponentError::invalid("address", format!("cannot listen on {address}: {e}"))
    };
    let listener = if cx.check_only {
        // What binding would resolve, without taking the address: the
        // pipeline it checks may be running and listening on it.
        let mut resolved = address.as_str().to_socket_addrs().map_err(cannot)?;
        if resolved.next().is_none() {
            return Err(ComponentError::invalid(
                "address",
                format!("cannot listen on {address}: it resolves to no address"),
            ));
        }
        None
    } else {
        let listener = std::net::TcpListener::bind(address.as_str()).map_err(cannot)?;
        // Tokio takes over the socket when the pipeline runs; it must not
        // block.
        listener.set_nonblocking(true).map_err(cannot)?;
        Some(listener)
    };
    Ok(Box::new(HttpServer {
        pipeline: cx.pipeline.to_string(),
        name: config.name().to_string(),
        listener,
        path: parsed.path,
        verbs: parsed.allowed_verbs.into_iter().collect(),
        timeout: parsed.timeout.0,
        max_concurrent_requests: parsed.max_concurrent_requests,
    }))
}

impl Input for HttpServer {
    fn run(self: Box<Self>, mut sink: Sink) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            let HttpServer {
                pipeline,
                name,
                listener,
                path,
                verbs,
                timeout,
                max_concurrent_requests,
            } = *self;
            let Some(listener) = listener else {
                return Err("built only to be checked: it has no socket".to_string());
            };
            let local_addr = listener
                .local_addr()
                .map_err(|e| format!("cannot listen: {e}"))?;
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(|e| format!("cannot listen on {local_addr}: {e}"))?;
            // The sink stays here: when the pipeline stops it drops this
            // future, and with it the sink (so the pipeline can finish)
            // and the relay (so requests still coming are answered 503).
            let (relay, mut deliveries) = mpsc::channel::<Delivery>(1);
            let endpoint = Endpoint {
                name: name.clone(),
                path: path.clone(),
                verbs,
                timeout,
                answering: Semaphore::new(max_concurrent_requests),
                max_concurrent_requests,
                relay,
            };
            let app = Router::new()
                .fallback(receive)
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
                .with_state(Arc::new(endpoint));
            // Dropped with this future: the open connections then finish
            // the request they are on and close.
            let (_running, stopping) = oneshot::channel::<()>();
            let server = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stopping.await;
            });
            tracing::info!(%pipeline, input = %name, "Listening on http://{local_addr}{path}");
            let relay = async move {
                while let Some(delivery) = deliveries.recv().await {
                    // Its client was answered 408 already: not delivering
                    // it spares a duplicate when the client sends again.
                    if delivery.queued.is_closed() {
                        continue;
                    }
                    match sink.send_acked(vec![delivery.message]).await {
                        Ok(acked) => {
                            let _ = delivery.queued.send(acked);
                        }
                        Err(crate::Stopped) => return,
                    }
                }
            };
            tokio::select! {
                served = server.into_future() => {
                    served.map_err(|e| format!("serving on {local_addr} failed: {e}"))
                }
                () = relay => Ok(()),
            }
        })
    }
}

/// How far a request's message got.
enum Outcome {
    Delivered,
    Failed(String),
    Stopping,
}

/// Answers one request: its body goes to the pipeline as a message, and
/// the answer waits for the output.
async fn receive(
    State(endpoint): State<Arc<Endpoint>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    if endpoint.relay.is_closed() {
        return (StatusCode::SERVICE_UNAVAILABLE, "Server closing").into_response();
    }
    let path = request.uri().path();
    let under = endpoint.path.ends_with('/') && path.starts_with(&endpoint.path);
    if path != endpoint.path && !under {
        return (StatusCode::NOT_FOUND, "404 page not found").into_response();
    }
    if !endpoint.verbs.contains(request.method().as_str()) {
        return (StatusCode::METHOD_NOT_ALLOWED, "Incorrect method").into_response();
    }
    // Held until answered: a request waiting for the output holds its
    // body. Refused at once rather than queued, as wafer's HTTP service
    // does: a client that retries does better than one behind a backlog.
    let Ok(_answering) = endpoint.answering.try_acquire() else {
        let mut response = (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "input {} is answering {} requests already (its max_concurrent_requests)",
                endpoint.name, endpoint.max_concurrent_requests
            ),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    let metadata = metadata_of(request.method(), request.uri(), request.headers(), remote);
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, Bytes::from_request(request, &())).await {
        Err(_) => return (StatusCode::REQUEST_TIMEOUT, "Request timed out").into_response(),
        Ok(Err(rejection)) => return rejection.into_response(),
        Ok(Ok(bytes)) => bytes,
    };
    let message = Message {
        bytes,
        metadata,
        timestamp: SystemTime::now(),
        error: None,
    };
    match tokio::time::timeout(endpoint.timeout, deliver(&endpoint.relay, message)).await {
        Err(_) => (StatusCode::REQUEST_TIMEOUT, "Request timed out").into_response(),
        Ok(Outcome::Delivered) => StatusCode::OK.into_response(),
        Ok(Outcome::Failed(error)) => (StatusCode::BAD_GATEWAY, error).into_response(),
        Ok(Outcome::Stopping) => {
            (StatusCode::SERVICE_UNAVAILABLE, "Server closing").into_response()
        }
    }
}

/// Hands `message` to the pipeline and waits for the output's answer.
async fn deliver(relay: &mpsc::Sender<Delivery>, message: Message) -> Outcome {
    let (queued, taken) = oneshot::channel();
    if relay.send(Delivery { message, queued }).await.is_err() {
        return Outcome::Stopping;
    }
    let Ok(acked) = taken.await else {
        return Outcome::Stopping;
    };
    match acked.await {
        Ok(Ok(())) => Outcome::Delivered,
        // Also how the pipeline answers a message it could not finish (a
        // worker panicked with it): 502, with why.
        Ok(Err(error)) => Outcome::Failed(error),
        // The pipeline always answers (even a batch it drops answers with
        // an error); treated as stopping should that ever change.
        Err(_) => Outcome::Stopping,
    }
}

/// Benthos' metadata for a request: its own fields, then every header's
/// first value, then every query parameter's (a later one replacing an
/// earlier one of the same name, as in Benthos).
fn metadata_of(method: &Method, uri: &Uri, headers: &HeaderMap, remote: SocketAddr) -> Metadata {
    let mut metadata = BTreeMap::new();
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    metadata.insert("http_server_user_agent".to_string(), user_agent);
    metadata.insert(
        "http_server_request_path".to_string(),
        uri.path().to_string(),
    );
    metadata.insert("http_server_verb".to_string(), method.as_str().to_string());
    metadata.insert(
        "http_server_remote_ip".to_string(),
        remote.ip().to_canonical().to_string(),
    );
    for key in headers.keys() {
        if let Some(first) = headers.get(key) {
            metadata.insert(
                canonical_header(key.as_str()),
                String::from_utf8_lossy(first.as_bytes()).into_owned(),
            );
        }
    }
    if let Ok(Query(pairs)) = Query::<Vec<(String, String)>>::try_from_uri(uri) {
        let mut seen = BTreeSet::new();
        for (key, value) in pairs {
            if seen.insert(key.clone()) {
                metadata.insert(key, value);
            }
        }
    }
    metadata
}

/// A header name as Go's `CanonicalMIMEHeaderKey` writes it, which is how
/// Benthos names its metadata: `content-type` is `Content-Type`.
fn canonical_header(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let c = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_canonical_as_in_go() {
        assert_eq!(canonical_header("content-type"), "Content-Type");
        assert_eq!(canonical_header("x-request-id"), "X-Request-Id");
        assert_eq!(canonical_header("user-agent"), "User-Agent");
        assert_eq!(canonical_header("etag"), "Etag");
    }

    #[test]
    fn metadata_names_the_request() {
        let mut headers = HeaderMap::new();
        headers.append("x-tag", "first".parse().unwrap());
        headers.append("x-tag", "second".parse().unwrap());
        headers.insert("user-agent", "curl/8".parse().unwrap());
        let uri: Uri = "/post?name=bob&name=alice&n=1".parse().unwrap();
        let remote: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let metadata = metadata_of(&Method::PUT, &uri, &headers, remote);
        assert_eq!(metadata["http_server_verb"], "PUT");
        assert_eq!(metadata["http_server_request_path"], "/post");
        assert_eq!(metadata["http_server_user_agent"], "curl/8");
        assert_eq!(metadata["http_server_remote_ip"], "127.0.0.1");
        assert_eq!(metadata["X-Tag"], "first");
        assert_eq!(metadata["User-Agent"], "curl/8");
        assert_eq!(metadata["name"], "bob");
        assert_eq!(metadata["n"], "1");
    }
}
