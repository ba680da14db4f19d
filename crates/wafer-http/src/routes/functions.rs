//! The function API: `POST /v1/functions/{id}` calls any function of the
//! registry by id (URL-encoded, or `{namespace}/{name}`).
//!
//! A typed function takes a JSON array of arguments and answers its JSON
//! result. A WASI program takes the body as its stdin and `?args=a,b` as
//! its arguments, and answers its stdout, with its exit status in the
//! `X-Wafer-Exit-Code` header ([`super::EXIT_CODE_HEADER`]). A wasi:http
//! proxy is served by its endpoint only: here it is a 400.

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::Method;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use serde_json::Value;
use wafer::{Input, InputForm, Runtime};

use super::{ServiceRoutes, function_and_body, program_input, rejected, respond};
use crate::limits::Budget;
use crate::response::request_error;

/// The route as it is counted in the metrics.
const ROUTE: &str = "/v1/functions/{id}";

pub(super) fn routes(routes: &ServiceRoutes<'_>) -> Router {
    let runtime = routes.runtime.clone();
    let observer = routes.observer(ROUTE, None, true);
    let handler = post(
        move |path: Result<Path<String>, PathRejection>,
              query: Result<Query<HashMap<String, String>>, QueryRejection>,
              body: Body| {
            let (runtime, observer) = (runtime.clone(), observer.clone());
            async move {
                let id = path.map(|Path(id)| function_id(&id));
                let answer = async {
                    match (&id, query) {
                        (Ok(id), Ok(Query(query))) => {
                            call(&runtime, id, &query, body, observer.budget()).await
                        }
                        (Err(e), _) => rejected(e.status(), e.body_text()),
                        (_, Err(e)) => rejected(e.status(), e.body_text()),
                    }
                };
                let function = id.as_deref().ok();
                observer.serve(&Method::POST, function, answer).await
            }
        },
    );
    Router::new().route("/v1/functions/{*id}", handler)
}

/// `namespace/name` is `namespace:name`; an id with a `:` (URL-encoded or
/// not) or a Dapr component's name is taken as it is.
fn function_id(path: &str) -> String {
    match path.split_once('/') {
        Some((namespace, name)) if !path.contains(':') => format!("{namespace}:{name}"),
        _ => path.to_string(),
    }
}

async fn call(
    runtime: &Runtime,
    id: &str,
    query: &HashMap<String, String>,
    body: Body,
    budget: Budget,
) -> Response {
    let (function, body) = match function_and_body(runtime, id, body, budget).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let input = match function.input_form() {
        InputForm::Program => program_input(query, body),
        InputForm::Http => {
            let message = format!("{id} is a wasi:http proxy: call it through its http.endpoint");
            return request_error(StatusCode::BAD_REQUEST, "bad_input", message);
        }
        _ => match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Array(args)) => Input::Json(args),
            Ok(_) => {
                let message = "expected a JSON array of arguments";
                return request_error(StatusCode::BAD_REQUEST, "bad_input", message);
            }
            Err(e) => {
                let message = format!("the body is not JSON: {e}");
                return request_error(StatusCode::BAD_REQUEST, "bad_input", message);
            }
        },
    };
    respond(function.invoke_until(input, budget.until).await)
}

#[cfg(test)]
mod tests {
    use super::function_id;

    #[test]
    fn ids_come_url_encoded_or_as_a_path() {
        assert_eq!(function_id("app.api/add"), "app.api:add");
        assert_eq!(function_id("app.api:add"), "app.api:add");
        assert_eq!(function_id("wasm"), "wasm");
    }
}
