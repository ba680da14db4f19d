//! Dapr's output binding API, answered as Dapr's runtime answers it
//! (`onOutputBindingMessage` in dapr/dapr, `bindings/wasm/output.go` in
//! dapr/components-contrib).
//!
//! `POST` or `PUT /v1.0/bindings/{name}` with
//! `{"operation": "execute", "metadata": {"args": "a,b"}, "data": …}` runs
//! the Dapr component `name`: argv is its module's name then `args` split
//! on commas, stdin is `data` as Go's `json.Marshal` writes it
//! ([`go_json`]). Success is 200 with the program's stdout as an
//! `application/json` body. A body that does not parse is 400
//! `ERR_MALFORMED_REQUEST`; anything else that fails (an unknown binding, a
//! missing or unsupported operation, a non-zero exit, a trap, a limit) is
//! 500 `ERR_INVOKE_OUTPUT_BINDING`, and stdout is discarded. These errors
//! keep Dapr's shape, not the function API's.
//!
//! `GET /v1.0/healthz` and `/v1.0/healthz/outbound` answer 204, as Dapr's
//! sidecar does for the SDKs that wait for it.

mod go_json;
mod request;

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use wafer::{CommandInput, Input, Runtime};

use self::request::BindingRequest;
use super::{ServiceRoutes, read_body};
use crate::limits::Budget;
use crate::response::json_response;

/// The one operation a `bindings.wasm` component supports.
const EXECUTE: &str = "execute";

/// The route as it is counted in the metrics.
const ROUTE: &str = "/v1.0/bindings/{name}";

pub(super) fn routes(routes: &ServiceRoutes<'_>) -> Router {
    let bindings = Arc::new(Bindings::new(routes.runtime));
    let observer = routes.observer(ROUTE, None, true);
    let execute = move |method: Method, name: Result<Path<String>, PathRejection>, body: Body| {
        let (bindings, observer) = (bindings.clone(), observer.clone());
        async move {
            let Ok(Path(name)) = name else {
                let answer =
                    async { malformed(StatusCode::BAD_REQUEST, "the binding's name is not UTF-8") };
                return observer.serve(&method, None, answer).await;
            };
            let answer = bindings.execute(&name, body, observer.budget());
            observer.serve(&method, Some(&name), answer).await
        }
    };
    let mut router = Router::new().route(ROUTE, post(execute.clone()).put(execute));
    for route in ["/v1.0/healthz", "/v1.0/healthz/outbound"] {
        let healthy = routes.fixed_get(route, || StatusCode::NO_CONTENT.into_response());
        router = router.route(route, healthy);
    }
    router
}

/// The registry's Dapr components.
struct Bindings {
    runtime: Arc<Runtime>,
    names: HashSet<String>,
}

impl Bindings {
    fn new(runtime: &Arc<Runtime>) -> Bindings {
        let names = runtime
            .registry()
            .dapr_bindings()
            .map(str::to_string)
            .collect();
        Bindings {
            runtime: runtime.clone(),
            names,
        }
    }

    async fn execute(&self, name: &str, body: Body, budget: Budget) -> Response {
        let body = match read_body(body, budget.body_bytes).await {
            Ok(body) => body,
            Err(error) => return malformed(error.status, &error.message),
        };
        let request = match BindingRequest::parse(&body) {
            Ok(request) => request,
            Err(reason) => return malformed(StatusCode::BAD_REQUEST, &reason),
        };
        match self.invoke(name, &request, budget).await {
            Ok(stdout) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                stdout,
            )
                .into_response(),
            Err(reason) => dapr_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ERR_INVOKE_OUTPUT_BINDING",
                &format!("error invoking output binding {name}: {reason}"),
            ),
        }
    }

    /// The program's stdout, or why the binding failed, in Dapr's words
    /// where Dapr has them.
    async fn invoke(
        &self,
        name: &str,
        request: &BindingRequest,
        budget: Budget,
    ) -> Result<Vec<u8>, String> {
        if request.operation.is_empty() {
            return Err("operation field is missing from request".into());
        }
        if !self.names.contains(name) {
            return Err(format!("couldn't find output binding {name}"));
        }
        if request.operation != EXECUTE {
            return Err(format!(
                "binding {name} does not support operation {}. supported operations:{EXECUTE}",
                request.operation
            ));
        }
        let function = self
            .runtime
            .function_to_call(name)
            .await
            .map_err(|e| e.to_string())?;
        let input = CommandInput::new()
            .args(request.args())
            .stdin(go_json::marshal(&request.data));
        let output = function
            .invoke_until(Input::Program(input), budget.until)
            .await
            .map_err(|e| e.to_string())?
            .into_program()
            .ok_or_else(|| format!("{name} is not a WASI program"))?;
        if output.exit_code != 0 {
            // wazero's words (v1.8, which Dapr's wasm binding uses).
            return Err(format!(
                "module closed with exit_code({})",
                output.exit_code
            ));
        }
        Ok(output.stdout)
    }
}

/// Dapr's `ERR_MALFORMED_REQUEST`.
fn malformed(status: StatusCode, reason: &str) -> Response {
    let message = format!("failed deserializing HTTP body: {reason}");
    dapr_error(status, "ERR_MALFORMED_REQUEST", &message)
}

/// `{"errorCode": …, "message": …}`, as Dapr's `APIError` writes it.
fn dapr_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(status, &json!({"errorCode": code, "message": message}))
}
