//! From a call's outcome to an HTTP response: the one table from error
//! kinds to statuses, and the JSON error body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use wafer::{Error, ErrorKind};

/// The status a failed call answers with.
///
/// | kind | status |
/// |---|---|
/// | `bad_input` | 400 |
/// | `unknown_function`, `not_a_function` | 404 |
/// | `refused` | 422 |
/// | `pool_full`, `interrupted` | 503 |
/// | `time_limit` | 504 |
/// | everything else (a trap, a limit, the guest breaking its ABI) | 500 |
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadInput => StatusCode::BAD_REQUEST,
        ErrorKind::UnknownFunction | ErrorKind::NotAFunction => StatusCode::NOT_FOUND,
        ErrorKind::Refused => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::PoolFull | ErrorKind::Interrupted => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::TimeLimit => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The response for a failed call: its status, and
/// `{"error": {"kind": …, "message": …}}` (with the problems of a function
/// refused at load). A full pool asks the client to retry in a second.
pub fn error(error: &Error) -> Response {
    let kind = error.kind();
    let mut body = json!({"kind": kind.as_str(), "message": error.to_string()});
    if let Error::Refused { problems, .. } = error {
        body["problems"] = problems.iter().map(ToString::to_string).collect();
    }
    let mut response = json_response(status_of(kind), &json!({ "error": body }));
    if kind == ErrorKind::PoolFull {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// An error the request itself made, before any call: `kind` is one of
/// the error kinds' names (`bad_input`), or `body_too_large`.
pub fn request_error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    let body = json!({"error": {"kind": kind, "message": message.into()}});
    json_response(status, &body)
}

/// `value` as an `application/json` body.
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}
