//! One service's routes: its endpoints, the function API, Dapr's API and
//! operations, each [`tracked`] under its declared route, inside the
//! service's [`Admission`] limits (operations excepted, so health checks
//! answer under load), all [`observe`]d.

mod dapr;
mod endpoints;
mod functions;
mod ops;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use wafer::registry::{DEFAULT_MAX_BODY_BYTES, HttpServiceConfig};
use wafer::{CommandInput, Function, Input, Output, Runtime};

use crate::BODY_TIMEOUT;
use crate::limits::{Admission, BodyLimit};
use crate::observe::{HttpMetrics, Observer, RouteInfo, observe};
use crate::response::{self, json_response, request_error};

/// The header that carries a WASI program's exit status.
pub const EXIT_CODE_HEADER: &str = "x-wafer-exit-code";

/// The router of service `service`.
pub(crate) fn router(
    runtime: &Arc<Runtime>,
    service: &str,
    config: &HttpServiceConfig,
    metrics: &Arc<HttpMetrics>,
) -> Router {
    let admission = Admission::new(service, config);
    let mut router = ops::routes(runtime, metrics);
    if config.function_api {
        router = router.merge(functions::routes(runtime, &admission));
    }
    if config.dapr_api {
        router = router.merge(dapr::routes(runtime, &admission));
    }
    let observer = Observer {
        service: Arc::from(service),
        metrics: metrics.clone(),
    };
    router
        .merge(endpoints::routes(runtime, service, &admission))
        .fallback(|| async {
            request_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no route answers this path",
            )
        })
        .method_not_allowed_fallback(|| async {
            request_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not answer this method",
            )
        })
        .layer(from_fn_with_state(observer, observe))
}

/// The route a handler answers, for [`observe`], and the limits it runs in.
#[derive(Clone)]
struct Tracked {
    info: RouteInfo,
    admission: Option<Admission>,
}

/// `handler`, answering as route `route` (calling `function`, when it is
/// always the same one) within `admission` when there is one.
fn tracked(
    handler: MethodRouter,
    route: &str,
    function: Option<&str>,
    admission: Option<&Admission>,
) -> MethodRouter {
    let tracked = Tracked {
        info: RouteInfo {
            route: Arc::from(route),
            function: function.map(Arc::from),
        },
        admission: admission.cloned(),
    };
    handler.layer(from_fn_with_state(tracked, track))
}

async fn track(State(tracked): State<Tracked>, request: Request, next: Next) -> Response {
    let mut response = match &tracked.admission {
        Some(admission) => admission.run(request, next).await,
        None => next.run(request).await,
    };
    let extensions = response.extensions_mut();
    match extensions.get_mut::<RouteInfo>() {
        // The handler named the function it called.
        Some(info) => info.route = tracked.info.route,
        None => {
            extensions.insert(tracked.info);
        }
    }
    response
}

/// An extractor's refusal (a query that does not parse), as a JSON error.
fn rejected(rejection: impl IntoResponse + std::fmt::Display) -> Response {
    let message = rejection.to_string();
    let status = rejection.into_response().status();
    request_error(status, "bad_input", message)
}

/// The function `id` about to be called, and the request's body; or the
/// response that says why not.
async fn function_and_body(
    runtime: &Runtime,
    id: &str,
    request: Request,
) -> Result<(Arc<Function>, Bytes), Response> {
    let function = runtime
        .function_to_call(id)
        .await
        .map_err(|error| response::error(&error))?;
    let body = read_body(request).await.map_err(BodyError::into_response)?;
    Ok((function, body))
}

/// Why a request's body could not be read.
struct BodyError {
    status: StatusCode,
    message: String,
}

impl BodyError {
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

/// The request's body, at most its service's `max_body_bytes` (a larger
/// one is 413), sent within [`BODY_TIMEOUT`] (a client that stalls is 408,
/// so it holds no handler, nor a shutdown, for ever); an unreadable one is
/// 400.
async fn read_body(request: Request) -> Result<Bytes, BodyError> {
    let limit = request.extensions().get::<BodyLimit>().map_or(
        usize::try_from(DEFAULT_MAX_BODY_BYTES).unwrap_or(usize::MAX),
        |limit| limit.0,
    );
    let read = axum::body::to_bytes(request.into_body(), limit);
    let (status, message) = match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(Ok(bytes)) => return Ok(bytes),
        Ok(Err(error)) if is_too_large(&error) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {limit} bytes (max_body_bytes)"),
        ),
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
    let args: Vec<&str> = query
        .get("args")
        .filter(|args| !args.is_empty())
        .map(|args| args.split(',').collect())
        .unwrap_or_default();
    Input::Program(CommandInput::new().args(args).stdin(body))
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
