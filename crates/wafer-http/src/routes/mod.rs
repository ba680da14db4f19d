//! One service's routes: its endpoints, the function API and operations.

mod endpoints;
mod functions;
mod ops;

use std::sync::Arc;

use axum::Router;
use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use wafer::registry::HttpServiceConfig;
use wafer::{CommandInput, Function, Input, Output, Runtime};

use crate::MAX_BODY_BYTES;
use crate::response::{self, json_response, request_error};

/// The header that carries a WASI program's exit status.
pub const EXIT_CODE_HEADER: &str = "x-wafer-exit-code";

/// The router of service `service`.
pub(crate) fn router(runtime: &Arc<Runtime>, service: &str, config: &HttpServiceConfig) -> Router {
    let mut router = ops::routes(runtime);
    if config.function_api {
        router = router.merge(functions::routes(runtime));
    }
    router.merge(endpoints::routes(runtime, service))
}

/// The function `id` about to be called, and the request's body; or the
/// response that says why not.
async fn function_and_body(
    runtime: &Runtime,
    id: &str,
    body: Body,
) -> Result<(Arc<Function>, Bytes), Response> {
    let function = runtime
        .function_to_call(id)
        .await
        .map_err(|error| response::error(&error))?;
    Ok((function, read_body(body).await?))
}

/// The request's body, at most [`MAX_BODY_BYTES`]; a larger one is
/// answered 413.
async fn read_body(body: Body) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            request_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is larger than {MAX_BODY_BYTES} bytes, or was cut short"),
            )
        })
}

/// A WASI program's input from a request: the body as stdin, `?args=a,b`
/// as its arguments.
fn program_input(query: &HashMap<String, String>, body: Bytes) -> Input {
    let args: Vec<&str> = query
        .get("args")
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
