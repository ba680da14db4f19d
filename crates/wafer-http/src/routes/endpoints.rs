//! The registry's `http.endpoint` routes of one service.
//!
//! `payload` transport: a body holding a JSON array is the arguments in
//! order; otherwise each parameter is taken by name from the path's
//! `{params}`, then the query, then a JSON object body (path and query
//! values are read as JSON when they parse, else as strings). A WASI
//! program gets the body as its stdin and `?args=a,b` as its arguments.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{MethodFilter, on};
use serde_json::{Map, Value};
use wafer::registry::{HttpEndpointConfig, RoutePath, RouteSegment, Transport};
use wafer::{Input, InputForm, Runtime};

use super::{function_and_body, program_input, respond};
use crate::response::request_error;

pub(super) fn routes(runtime: &Arc<Runtime>, service: &str) -> Router {
    let mut router = Router::new();
    for (entry, endpoint) in runtime.registry().http_endpoints(service) {
        let Some(method) = method_filter(&endpoint.method) else {
            continue;
        };
        tracing::debug!(endpoint = %entry.id, method = %endpoint.method, path = %endpoint.path, "Route.");
        let path = positional(&endpoint.path);
        let runtime = runtime.clone();
        let endpoint = Arc::new(endpoint.clone());
        let handler = move |Path(values): Path<Vec<(String, String)>>,
                            Query(query): Query<HashMap<String, String>>,
                            body: Body| {
            let (runtime, endpoint) = (runtime.clone(), endpoint.clone());
            async move {
                if endpoint.transport != Transport::Payload {
                    return request_error(
                        StatusCode::NOT_IMPLEMENTED,
                        "inactive",
                        "transport wasi-http is not served yet",
                    );
                }
                let params = param_names(&endpoint.path).zip(values.into_iter().map(|(_, v)| v));
                call(&runtime, &endpoint, params.collect(), query, body).await
            }
        };
        router = router.route(&path, on(method, handler));
    }
    router
}

/// The route as the router sees it: parameters named by position
/// (`/users/{p0}`), so that routes of different methods whose parameters
/// have different names share one path.
fn positional(path: &RoutePath) -> String {
    if path.segments.is_empty() {
        return "/".into();
    }
    let mut index = 0;
    let mut route = String::new();
    for segment in &path.segments {
        match segment {
            RouteSegment::Literal(text) => route.push_str(&format!("/{text}")),
            RouteSegment::Param(_) => {
                route.push_str(&format!("/{{p{index}}}"));
                index += 1;
            }
        }
    }
    route
}

fn param_names(path: &RoutePath) -> impl Iterator<Item = String> + '_ {
    path.segments.iter().filter_map(|segment| match segment {
        RouteSegment::Param(name) => Some(name.clone()),
        RouteSegment::Literal(_) => None,
    })
}

fn method_filter(method: &str) -> Option<MethodFilter> {
    Some(match method {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "PATCH" => MethodFilter::PATCH,
        "DELETE" => MethodFilter::DELETE,
        "HEAD" => MethodFilter::HEAD,
        "OPTIONS" => MethodFilter::OPTIONS,
        _ => return None,
    })
}

async fn call(
    runtime: &Runtime,
    endpoint: &HttpEndpointConfig,
    params: HashMap<String, String>,
    query: HashMap<String, String>,
    body: Body,
) -> Response {
    let (function, body) = match function_and_body(runtime, &endpoint.func, body).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let input = match function.input_form() {
        InputForm::Program => program_input(&query, body),
        _ => match typed_args(function.params(), &params, &query, &body) {
            Ok(args) => Input::Json(args),
            Err(message) => return request_error(StatusCode::BAD_REQUEST, "bad_input", message),
        },
    };
    respond(function.invoke(input).await)
}

/// The arguments of a typed call, by position or by name.
fn typed_args(
    params: &[(String, wafer::values::Type)],
    path: &HashMap<String, String>,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<Vec<Value>, String> {
    let mut named = Map::new();
    if !body.iter().all(u8::is_ascii_whitespace) {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Array(args)) => return Ok(args),
            Ok(Value::Object(object)) => named = object,
            Ok(_) => {
                return Err(
                    "the body must be a JSON array of arguments or an object of named ones".into(),
                );
            }
            Err(e) => return Err(format!("the body is not JSON: {e}")),
        }
    }
    params
        .iter()
        .map(
            |(name, ty)| match path.get(name).or_else(|| query.get(name)) {
                Some(text) => Ok(wafer::values::json_from_text(ty, text)),
                None => named.remove(name).ok_or_else(|| {
                    format!("no value for the parameter `{name}` (path, query or body)")
                }),
            },
        )
        .collect()
}
