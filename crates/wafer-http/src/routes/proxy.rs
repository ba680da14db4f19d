//! Endpoints whose function is a wasi:http proxy component, served as
//! `wasmtime serve` serves one: the request goes to the guest whole
//! (method, path with query, headers, its body streamed, at most the
//! service's `max_body_bytes`: a larger declared `Content-Length` is 413
//! before the guest runs, a chunked body that grows past it fails the
//! guest's read), and the guest's response comes back streamed, trailers
//! included. A body the guest finished before its call returned (most
//! do) goes out whole, with its `Content-Length`.
//!
//! A path ending in `/...` is a prefix: `/app/...` answers `/app` and
//! every path below it, and the guest sees the whole path. An endpoint
//! without `method` answers every method. A guest that fails before it
//! sets a response answers as any failed call does (500 for a trap, 504
//! for its time limit, 503 for a full pool); one that fails while it
//! streams the body breaks the response off: the connection closes before
//! the body's end (a chunked body without its last chunk), so that the
//! client sees a failure and not a short body. A body ends as complete
//! once the guest finished it and its call returned. One the guest left
//! broken before its call returned (dropped unfinished, or shorter than
//! its `content-length`) answers 500, since nothing of it has gone out
//! yet. A client that leaves before the response stops the guest; one
//! that leaves while the body streams does not (the guest's writes then
//! fail).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter, any, on};
use axum::{BoxError, Router};
use http_body::{Frame, SizeHint};
use tokio::sync::oneshot;
use wafer::proxy::{HttpCall, ResponseBody};
use wafer::registry::{HttpEndpointConfig, RoutePath};
use wafer::{Input, Output, Runtime};

use super::endpoints::positional;
use super::{BodyError, ServiceRoutes};
use crate::limits::Budget;
use crate::response::{self, request_error};

/// Adds `endpoint`'s routes to `router`.
pub(super) fn route(
    router: Router,
    routes: &ServiceRoutes<'_>,
    endpoint: &HttpEndpointConfig,
) -> Router {
    let observer = routes.observer(&endpoint.path.to_string(), Some(&endpoint.func), true);
    let runtime = routes.runtime.clone();
    let func: Arc<str> = Arc::from(endpoint.func.as_str());
    let handler = move |request: Request| {
        let (runtime, func, observer) = (runtime.clone(), func.clone(), observer.clone());
        async move {
            let method = request.method().clone();
            let budget = observer.budget();
            observer
                .serve(&method, None, serve(&runtime, func, request, budget))
                .await
        }
    };
    let method_router: MethodRouter = match endpoint.method.as_deref() {
        None => any(handler),
        Some(method) => {
            // The registry admits only methods the router has a filter for.
            let Some(filter) = method
                .parse::<Method>()
                .ok()
                .and_then(|m| MethodFilter::try_from(m).ok())
            else {
                return router;
            };
            on(filter, handler)
        }
    };
    let mut router = router;
    for path in router_paths(&endpoint.path) {
        router = router.route(&path, method_router.clone());
    }
    router
}

/// The router's paths for `path`: itself, and for a prefix every path
/// below it too, its trailing slash included.
fn router_paths(path: &RoutePath) -> Vec<String> {
    let itself = positional(path);
    if !path.prefix {
        return vec![itself];
    }
    let base = itself.trim_end_matches('/');
    let mut paths = vec![format!("{base}/"), format!("{base}/{{*rest}}")];
    if !base.is_empty() {
        paths.push(itself.clone());
    }
    paths
}

/// One request through the proxy `func`.
async fn serve(runtime: &Runtime, func: Arc<str>, request: Request, budget: Budget) -> Response {
    let function = match runtime.function_to_call(&func).await {
        Ok(function) => function,
        Err(error) => return response::error(&error),
    };
    let (mut parts, body) = request.into_parts();
    // A HEAD answer's body is empty whatever length GET would send.
    let may_send_whole = parts.method != Method::HEAD;
    // A body declared too large is refused before the guest runs; one that
    // grows too large while the guest reads it fails the guest's read.
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > budget.body_bytes as u64) {
        return BodyError::too_large(budget.body_bytes).into_response();
    }
    // HTTP/1.0 clients may send no Host; the guest is always told one.
    if !parts.headers.contains_key(header::HOST) {
        parts
            .headers
            .insert(header::HOST, HeaderValue::from_static("localhost"));
    }
    let body = http_body_util::Limited::new(body, budget.body_bytes);
    let (call, mut response) = HttpCall::new(Request::from_parts(parts, body), false);
    let mut call =
        Box::pin(async move { function.invoke_until(Input::Http(call), budget.until).await });
    let (ended_well, call_ended_well) = oneshot::channel();
    // The call runs in this request's task until it ends or sets the
    // response, whichever comes first; most end at once. One still
    // streaming its body after setting the response goes on in a task of
    // its own. The guest sets the response only while its call is polled
    // (wasi:http's `response-outparam.set` is a host call on the guest's
    // fiber, and a proxy's calls are async, never handed to a thread), so
    // the response is looked for after each poll rather than waited on:
    // its sending would wake this task while it runs, and Tokio would
    // reschedule the task and wake another worker for nothing.
    let first = std::future::poll_fn(|cx| match call.as_mut().poll(cx) {
        Poll::Ready(ended) => Poll::Ready(Err(ended)),
        Poll::Pending => response
            .try_recv()
            .map_or(Poll::Pending, |sent| Poll::Ready(Ok(sent))),
    })
    .await;
    let (outcome, ended_well_here) = match first {
        Ok(sent) => {
            tokio::spawn(async move {
                let _ = ended_well.send(call.await.is_ok());
            });
            (Ok(sent), false)
        }
        Err(ended) => {
            let here = ended.is_ok();
            let _ = ended_well.send(here);
            // A reused instance may keep an outparam it never set: once
            // the call has ended, a response not sent yet never will be.
            (response.try_recv().map_err(|_| ended), here)
        }
    };
    let whole = may_send_whole && ended_well_here;
    answer(&func, outcome, call_ended_well, whole)
}

/// The answer of a request: the response the guest set (its body ending
/// as the call does), or the error code it set instead, or why there is
/// neither (the call's outcome). When `whole` (the call has ended well,
/// and the request is no HEAD) a body the guest finished is sent whole,
/// with its `Content-Length` (hyper sends none for a 204 or 304).
fn answer(
    func: &str,
    outcome: Result<Result<wafer::proxy::Response, wafer::proxy::ErrorCode>, wafer::Result<Output>>,
    call_ended_well: oneshot::Receiver<bool>,
    whole: bool,
) -> Response {
    match outcome {
        Ok(Ok(response)) => {
            let (parts, mut body) = response.into_parts();
            let written = if whole {
                Written::take(&mut body)
            } else {
                Written::default()
            };
            let declared = parts.headers.get(header::CONTENT_LENGTH);
            let body = match written.whole(declared) {
                Taken::Whole(whole) => Body::from(whole),
                // Nothing of it has gone out: the answer can still say so.
                Taken::Broken(problem) => {
                    return request_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "guest_error",
                        format!("{func} {problem}"),
                    );
                }
                Taken::Streaming(written) => Body::new(EndsWithTheCall {
                    written: written.frames,
                    body,
                    body_ended: written.ended,
                    call_ended_well: Some(call_ended_well),
                }),
            };
            Response::from_parts(parts, body)
        }
        Ok(Err(code)) => request_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "guest_error",
            format!("{func} answered with the error {code:?}"),
        ),
        Err(Err(error)) => response::error(&error),
        Err(Ok(_)) => request_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "abi",
            format!("{func} returned without setting a response"),
        ),
    }
}

/// A guest's response body, complete only if the guest's call ended well.
/// wasmtime ends the body as if the guest had finished it when the guest's
/// store goes away unfinished (a trap, the time limit); this one then
/// ends in an error, which has hyper close the connection before the
/// body's end.
struct EndsWithTheCall {
    /// Frames taken from `body` already, sent first.
    written: VecDeque<Result<Frame<Bytes>, BoxError>>,
    body: ResponseBody,
    body_ended: bool,
    /// Whether the call ended well, once it has; taken once answered.
    call_ended_well: Option<oneshot::Receiver<bool>>,
}

impl HttpBody for EndsWithTheCall {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(frame) = this.written.pop_front() {
            return Poll::Ready(Some(frame));
        }
        if !this.body_ended {
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(frame) => return Poll::Ready(Some(frame.map_err(Into::into))),
                None => this.body_ended = true,
            }
        }
        let Some(call) = this.call_ended_well.as_mut() else {
            return Poll::Ready(None);
        };
        // A call that went away without an answer did not end well.
        let ended_well = ready!(Pin::new(call).poll(cx)).unwrap_or(false);
        this.call_ended_well = None;
        if ended_well {
            Poll::Ready(None)
        } else {
            Poll::Ready(Some(Err(
                "the function failed while it streamed the body".into()
            )))
        }
    }

    fn is_end_stream(&self) -> bool {
        self.written.is_empty()
            && self.call_ended_well.is_none()
            && (self.body_ended || self.body.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let written: u64 = (self.written.iter())
            .filter_map(|frame| Some(frame.as_ref().ok()?.data_ref()?.len() as u64))
            .sum();
        let rest = self.body.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + written);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + written);
        }
        hint
    }
}

/// What a guest has written of its body so far, taken without waiting.
#[derive(Default)]
struct Written {
    frames: VecDeque<Result<Frame<Bytes>, BoxError>>,
    ended: bool,
}

impl Written {
    /// Takes every frame `body` holds now. The guest writes into a bounded
    /// channel, so a call that has ended left at most a few chunks there.
    fn take(body: &mut ResponseBody) -> Written {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut written = Written::default();
        loop {
            match Pin::new(&mut *body).poll_frame(&mut cx) {
                Poll::Ready(Some(frame)) => {
                    let failed = frame.is_err();
                    written.frames.push_back(frame.map_err(Into::into));
                    if failed {
                        return written;
                    }
                }
                Poll::Ready(None) => {
                    written.ended = true;
                    return written;
                }
                Poll::Pending => return written,
            }
        }
    }

    /// The whole body, when it ended, holds only data and is as long as
    /// the guest `declared`; why it is broken, when it failed or ended at
    /// another length (wasmtime ends the body of a guest that went away
    /// without finishing it as if it had); else what was taken, to send
    /// before the rest.
    fn whole(self, declared: Option<&HeaderValue>) -> Taken {
        let mut length = 0;
        for frame in &self.frames {
            match frame {
                Ok(frame) => match frame.data_ref() {
                    Some(data) => length += data.len(),
                    // Trailers: sent chunked.
                    None => return Taken::Streaming(self),
                },
                Err(error) => {
                    return Taken::Broken(format!(
                        "ended its call with its response body broken: {error}"
                    ));
                }
            }
        }
        if !self.ended {
            return Taken::Streaming(self);
        }
        if let Some(declared) = declared
            && declared.to_str().ok().and_then(|n| n.parse().ok()) != Some(length)
        {
            return Taken::Broken(format!(
                "wrote {length} bytes of its response body, not the {} its content-length says",
                String::from_utf8_lossy(declared.as_bytes())
            ));
        }
        let mut chunks: Vec<Bytes> = (self.frames.into_iter())
            .filter_map(|frame| frame.ok()?.into_data().ok())
            .collect();
        Taken::Whole(match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.remove(0),
            _ => Bytes::from(chunks.concat()),
        })
    }
}

/// What a guest's response body is, as far as it was written.
enum Taken {
    /// Ended, and whole: sent with its length.
    Whole(Bytes),
    /// Ended broken (failed, or not at its declared length): the reason.
    Broken(String),
    /// Not ended (or with trailers): what was taken, sent as it streams.
    Streaming(Written),
}
