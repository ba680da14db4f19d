//! The registry's `http.endpoint` routes of one service.
//!
//! The endpoint's `transport`, or else its function's, says how a request
//! becomes a call:
//!
//! - `payload`: a body holding a JSON array is the arguments in order;
//!   otherwise each parameter is taken by name from the path's `{params}`,
//!   then the query, then a JSON object body (path and query values are
//!   read as JSON when they parse, else as strings). The result is JSON.
//! - `wasi-http`: the raw body is the one argument (a `string`, or a
//!   `list<u8>`; a function without parameters ignores it); a result of `none` or no result answers 204, bytes
//!   `application/octet-stream`, a string `text/plain`, anything else JSON.
//!
//! A wasi:http proxy gets the request itself (see `proxy`).
//!
//! A WASI program gets the body as its stdin and `?args=a,b` as its
//! arguments, whatever the transport.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use serde_json::{Map, Value};
use wafer::registry::{Abi, RoutePath, RouteSegment, Transport};
use wafer::values::{Type, Val};
use wafer::{Function, Input, InputForm, Runtime};

use super::{ServiceRoutes, function_and_body, program_input, proxy, rejected, respond};
use crate::limits::Budget;
use crate::response::{self, json_response, request_error};

pub(super) fn routes(routes: &ServiceRoutes<'_>) -> Router {
    let runtime = routes.runtime;
    let mut router = Router::new();
    for (entry, endpoint) in runtime.registry().http_endpoints(routes.service) {
        let method = endpoint.method.as_deref().unwrap_or("*");
        tracing::debug!(endpoint = %entry.id, method, path = %endpoint.path, "Route.");
        let function = runtime.registry().get(&endpoint.func);
        if function
            .and_then(|entry| entry.function())
            .is_some_and(|function| function.abi == Abi::HttpProxy)
        {
            router = proxy::route(router, routes, endpoint);
            continue;
        }
        // The registry admits only methods the router has a filter for, and
        // leaves `method` out only for proxies.
        let method = endpoint
            .method
            .as_deref()
            .and_then(|m| m.parse::<Method>().ok());
        let Some(method) = method.and_then(|m| MethodFilter::try_from(m).ok()) else {
            continue;
        };
        let path = positional(&endpoint.path);
        let transport = endpoint.transport.unwrap_or_else(|| {
            function
                .and_then(|entry| entry.function())
                .map(|function| function.transport)
                .unwrap_or_default()
        });
        let observer = routes.observer(&endpoint.path.to_string(), Some(&endpoint.func), true);
        let runtime = runtime.clone();
        let endpoint = Arc::new(endpoint.clone());
        let handler = move |method: Method,
                            path: Result<Path<Vec<(String, String)>>, PathRejection>,
                            query: Result<Query<HashMap<String, String>>, QueryRejection>,
                            body: Body| {
            let (runtime, endpoint) = (runtime.clone(), endpoint.clone());
            let observer = observer.clone();
            async move {
                let answer = async {
                    let (Path(values), Query(query)) = match (path, query) {
                        (Ok(path), Ok(query)) => (path, query),
                        (Err(e), _) => return rejected(e.status(), e.body_text()),
                        (_, Err(e)) => return rejected(e.status(), e.body_text()),
                    };
                    let values = values.into_iter().map(|(_, v)| v);
                    let parts = CallRequest {
                        params: param_names(&endpoint.path).zip(values).collect(),
                        query,
                        transport,
                    };
                    call(&runtime, &endpoint.func, parts, body, observer.budget()).await
                };
                observer.serve(&method, None, answer).await
            }
        };
        router = router.route(&path, on(method, handler));
    }
    router
}

/// The route as the router sees it: parameters named by position
/// (`/users/{p0}`), so that routes of different methods whose parameters
/// have different names share one path (a proxy's prefix `/...` is not
/// part of it).
pub(super) fn positional(path: &RoutePath) -> String {
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

/// The largest body passed as a `list<u8>` argument: each byte becomes a
/// component value of its own on the way in, tens of bytes each.
const MAX_RAW_LIST_BYTES: usize = 1 << 20;

/// What a request brings besides its body.
struct CallRequest {
    params: HashMap<String, String>,
    query: HashMap<String, String>,
    transport: Transport,
}

async fn call(
    runtime: &Runtime,
    func: &str,
    parts: CallRequest,
    body: Body,
    budget: Budget,
) -> Response {
    let (function, body) = match function_and_body(runtime, func, body, budget).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if function.input_form() == InputForm::Program {
        let input = program_input(&parts.query, body);
        return respond(function.invoke_until(input, budget.until).await);
    }
    match parts.transport {
        Transport::Payload => {
            match typed_args(function.params(), &parts.params, &parts.query, &body) {
                Ok(args) => respond(function.invoke_until(Input::Json(args), budget.until).await),
                Err(message) => request_error(StatusCode::BAD_REQUEST, "bad_input", message),
            }
        }
        Transport::WasiHttp => match raw_args(&function, body) {
            Ok(args) => match function.invoke_until(Input::Vals(args), budget.until).await {
                Ok(output) => raw_response(output.into_vals().and_then(|v| v.into_iter().next())),
                Err(error) => response::error(&error),
            },
            Err((status, kind, message)) => request_error(status, kind, message),
        },
    }
}

/// The body as a `wasi-http` function's one argument (none for a function
/// that takes none); or the status, kind and message of the error that
/// says why it cannot be.
fn raw_args(
    function: &Function,
    body: Bytes,
) -> Result<Vec<Val>, (StatusCode, &'static str, String)> {
    match function.params() {
        [] => Ok(Vec::new()),
        [(_, Type::String)] => match String::from_utf8(body.into()) {
            Ok(text) => Ok(vec![Val::String(text)]),
            Err(_) => Err((
                StatusCode::BAD_REQUEST,
                "bad_input",
                "the body is not UTF-8 text".into(),
            )),
        },
        [(_, Type::List(list))] if list.ty() == Type::U8 && body.len() > MAX_RAW_LIST_BYTES => {
            Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the body is larger than {MAX_RAW_LIST_BYTES} bytes, the most a list<u8> argument takes"
                ),
            ))
        }
        [(_, Type::List(list))] if list.ty() == Type::U8 => {
            Ok(vec![Val::List(body.iter().map(|&b| Val::U8(b)).collect())])
        }
        _ => Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            "refused",
            format!(
                "transport wasi-http passes the body as one string or list<u8> argument; {} is {}",
                function.id(),
                function.signature()
            ),
        )),
    }
}

/// A `wasi-http` function's result as the response.
fn raw_response(result: Option<Val>) -> Response {
    match result {
        None | Some(Val::Option(None)) => StatusCode::NO_CONTENT.into_response(),
        Some(Val::Option(Some(inner))) => raw_response(Some(*inner)),
        Some(Val::String(text)) => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }
        Some(Val::List(items)) if items.iter().all(|v| matches!(v, Val::U8(_))) => {
            let bytes: Vec<u8> = items
                .into_iter()
                .filter_map(|v| match v {
                    Val::U8(b) => Some(b),
                    _ => None,
                })
                .collect();
            ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
        }
        Some(other) => json_response(StatusCode::OK, &wafer::values::into_json(other)),
    }
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
