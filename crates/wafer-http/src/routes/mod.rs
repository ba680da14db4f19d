//! One service's routes: its endpoints, the function API, Dapr's API and
//! operations. Each route answers through its own
//! [`RouteObserver`](crate::observe::RouteObserver), inside the service's
//! [`Admission`] limits (operations excepted, so health checks answer
//! under load).

mod dapr;
mod endpoints;
mod functions;
mod ops;
mod proxy;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use wafer::registry::HttpServiceConfig;
use wafer::{CommandInput, Function, Input, Output, Runtime};

use crate::BODY_TIMEOUT;
use crate::limits::{Admission, Budget};
use crate::observe::{HttpMetrics, RouteObserver};
use crate::response::{self, json_response, request_error};

/// The header that carries a WASI program's exit status.
pub const EXIT_CODE_HEADER: &str = "x-wafer-exit-code";

/// What the routes of one service are built from.
pub(crate) struct ServiceRoutes<'a> {
    runtime: &'a Arc<Runtime>,
    service: &'a str,
    metrics: &'a Arc<HttpMetrics>,
    admission: Admission,
}

impl ServiceRoutes<'_> {
    /// The observer of `route` (calling `function` when it always calls
    /// the same one), within the service's limits when `limited`.
    /// `GET route` (and `HEAD`), answered with `answer()` outside the
    /// service's limits: the operations routes, which must answer under
    /// load.
    fn fixed_get(
        &self,
        route: &str,
        answer: impl Fn() -> Response + Clone + Send + Sync + 'static,
    ) -> MethodRouter {
        let observer = self.observer(route, None, false);
        get(
            move |method: Method| async move { observer.serve(&method, None, async { answer() }).await },
        )
    }

    fn observer(&self, route: &str, function: Option<&str>, limited: bool) -> Arc<RouteObserver> {
        RouteObserver::new(
            self.service,
            route,
            function,
            self.metrics,
            &self.admission,
            limited,
        )
    }
}

/// The router of service `service`.
pub(crate) fn router(
    runtime: &Arc<Runtime>,
    service: &str,
    config: &HttpServiceConfig,
    metrics: &Arc<HttpMetrics>,
) -> Router {
    let routes = ServiceRoutes {
        runtime,
        service,
        metrics,
        admission: Admission::new(service, config),
    };
    let mut router = ops::routes(&routes);
    if config.function_api {
        router = router.merge(functions::routes(&routes));
    }
    if config.dapr_api {
        router = router.merge(dapr::routes(&routes));
    }
    let unmatched = routes.observer("unmatched", None, false);
    let wrong_method = unmatched.clone();
    router
        .merge(endpoints::routes(&routes))
        .fallback(move |method: Method| {
            let message = "no route answers this path";
            refuse(
                unmatched,
                method,
                StatusCode::NOT_FOUND,
                "not_found",
                message,
            )
        })
        .method_not_allowed_fallback(move |method: Method| {
            let message = "this route does not answer this method";
            let status = StatusCode::METHOD_NOT_ALLOWED;
            refuse(wrong_method, method, status, "method_not_allowed", message)
        })
}

/// A request no route takes, answered with an error and counted as route
/// `unmatched`.
async fn refuse(
    observer: Arc<RouteObserver>,
    method: Method,
    status: StatusCode,
    kind: &'static str,
    message: &'static str,
) -> Response {
    let answer = async { request_error(status, kind, message) };
    observer.serve(&method, None, answer).await
}

/// An extractor's refusal (a path or query that does not parse), as a
/// JSON error.
fn rejected(status: StatusCode, message: String) -> Response {
    request_error(status, "bad_input", message)
}

/// The function `id` about to be called, and the request's body (at most
/// the budget's bytes); or the response that says why not.
async fn function_and_body(
    runtime: &Runtime,
    id: &str,
    body: Body,
    budget: Budget,
) -> Result<(Arc<Function>, Bytes), Response> {
    let function = runtime
        .function_to_call(id)
        .await
        .map_err(|error| response::error(&error))?;
    let body = read_body(body, budget.body_bytes)
        .await
        .map_err(BodyError::into_response)?;
    Ok((function, body))
}

/// Why a request's body could not be read.
struct BodyError {
    status: StatusCode,
    message: String,
}

impl BodyError {
    /// A body over the service's `max_body_bytes` (`limit`): 413.
    fn too_large(limit: usize) -> BodyError {
        BodyError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("the body is larger than {limit} bytes (max_body_bytes)"),
        }
    }

    /// The function API's answer: kind `body_too_large` for 413, else
    /// `bad_input`.
    fn into_response(self) -> Response {
        let kind = match self.status {
            StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            _ => "bad_input",
        };
        request_error(self.status, kind, self.message)
    }
}

/// The request's body, at most `limit` bytes, its service's
/// `max_body_bytes` (a larger one is 413), sent within [`BODY_TIMEOUT`] (a
/// client that stalls is 408, so it holds no handler, nor a shutdown, for
/// ever); an unreadable one is 400.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let read = axum::body::to_bytes(body, limit);
    let (status, message) = match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(Ok(bytes)) => return Ok(bytes),
        Ok(Err(error)) if is_too_large(&error) => return Err(BodyError::too_large(limit)),
        Ok(Err(error)) => (
            StatusCode::BAD_REQUEST,
            format!("the body could not be read: {error}"),
        ),
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        ),
    };
    Err(BodyError { status, message })
}

fn is_too_large(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if cause.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// A WASI program's input from a request: the body as stdin, `?args=a,b`
/// as its arguments.
fn program_input(query: &HashMap<String, String>, body: Bytes) -> Input {
    let args = comma_separated(query.get("args").map(String::as_str));
    Input::Program(CommandInput::new().args(args).stdin(body))
}

/// Arguments written `a,b` (`?args=` here, metadata `args` in Dapr's API);
/// none when absent or empty.
fn comma_separated(args: Option<&str>) -> Vec<&str> {
    match args {
        None | Some("") => Vec::new(),
        Some(args) => args.split(',').collect(),
    }
}

/// The response to a call: a typed result as JSON, a program's stdout with
/// its exit status in [`EXIT_CODE_HEADER`], an error by its kind.
fn respond(outcome: wafer::Result<Output>) -> Response {
    match outcome {
        Ok(Output::Program(output)) => (
            StatusCode::OK,
            [(EXIT_CODE_HEADER, output.exit_code.to_string())],
            output.stdout,
        )
            .into_response(),
        Ok(answer) => json_response(StatusCode::OK, &answer.into_json()),
        Err(error) => response::error(&error),
    }
}
