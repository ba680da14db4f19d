//! Endpoints whose function is a wasi:http proxy component, served as
//! `wasmtime serve` serves one: the request goes to the guest whole
//! (method, path with query, headers, its body streamed, at most the
//! service's `max_body_bytes`: a larger declared `Content-Length` is 413
//! before the guest runs, a chunked body that grows past it fails the
//! guest's read), and the guest's response comes back streamed, trailers
//! included.
//!
//! A path ending in `/...` is a prefix: `/app/...` answers `/app` and
//! every path below it, and the guest sees the whole path. An endpoint
//! without `method` answers every method. A guest that fails before it
//! sets a response answers as any failed call does (500 for a trap, 504
//! for its time limit, 503 for a full pool); one that fails while it
//! streams the body ends it there (a chunked body then ends as if it were
//! complete: the failure shows in the function's metrics and log). A
//! client that leaves before the response stops the guest; one that
//! leaves while the body streams does not (the guest's writes then fail).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter, any, on};
use wafer::proxy::HttpCall;
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
    let (call, response) = HttpCall::new(Request::from_parts(parts, body), false);
    let mut call =
        Box::pin(async move { function.invoke_until(Input::Http(call), budget.until).await });
    let mut response = response;
    // The call runs in this request's task until it ends or sets the
    // response, whichever comes first; most end at once. One still
    // streaming its body after setting the response goes on in a task of
    // its own.
    let outcome = tokio::select! {
        biased;
        sent = &mut response => match sent {
            Ok(sent) => {
                tokio::spawn(call);
                Ok(sent)
            }
            Err(_) => Err(call.await),
        },
        // A reused instance may keep an outparam it never set: once the
        // call has ended, a response not sent yet never will be.
        ended = &mut call => response.try_recv().map_err(|_| ended),
    };
    answer(&func, outcome)
}

/// The answer of a request: the response the guest set, or the error code
/// it set instead, or why there is neither (the call's outcome).
fn answer(
    func: &str,
    outcome: Result<Result<wafer::proxy::Response, wafer::proxy::ErrorCode>, wafer::Result<Output>>,
) -> Response {
    match outcome {
        Ok(Ok(response)) => response.map(Body::new),
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
