//! Echoes the request. Status: the query parameter `status` (`?status=201`;
//! 200 without it; 400 with `content-type: text/plain` and the body
//! `error: bad status` if it is no valid status). Headers: `x-method` (the
//! method), `x-path-with-query`, `x-authority`, `x-scheme` (each left out
//! if the request has none), then every request header whose name starts
//! with `x-echo-`, copied as is. Body: the request body streamed back as
//! it arrives (each chunk of a blocking read written with
//! blocking-write-and-flush in pieces of at most 4096 bytes, within
//! check-write), never held whole. With `?trailers=1` the response
//! announces `trailer: x-trailer, x-bytes` (after `x-scheme`) and the body
//! ends with the trailers `x-trailer: done` and `x-bytes: <bytes echoed>`.
//! If a stream fails midway, the response body is dropped unfinished.

use wafer_guest_http::{BodyReader, fields, method_name, query_param, respond, scheme_name, send};
use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};

struct Echo;

impl Guest for Echo {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path_with_query = request.path_with_query();
        let query = path_with_query.as_deref().unwrap_or("");
        let status = match query_param(query, "status") {
            None => Some(200),
            Some(status) => status.parse::<u16>().ok(),
        };
        let trailers = query_param(query, "trailers") == Some("1");

        let headers = Fields::new();
        let _ = headers.append("x-method", method_name(&request.method()).as_bytes());
        if let Some(path_with_query) = &path_with_query {
            let _ = headers.append("x-path-with-query", path_with_query.as_bytes());
        }
        if let Some(authority) = request.authority() {
            let _ = headers.append("x-authority", authority.as_bytes());
        }
        if let Some(scheme) = request.scheme() {
            let _ = headers.append("x-scheme", scheme_name(&scheme).as_bytes());
        }
        if trailers {
            // HTTP/1.1 servers (hyper) send only the trailers announced.
            let _ = headers.append("trailer", b"x-trailer, x-bytes");
        }
        for (name, value) in request.headers().entries() {
            if name
                .get(..7)
                .is_some_and(|p| p.eq_ignore_ascii_case("x-echo-"))
            {
                let _ = headers.append(&name, &value);
            }
        }

        let response = OutgoingResponse::new(headers);
        let Some(Ok(())) = status.map(|status| response.set_status_code(status)) else {
            return respond(out, 400, "text/plain", b"error: bad status");
        };
        let Ok(body) = request.consume() else {
            return respond(out, 500, "text/plain", b"error: request body taken");
        };
        let reader = BodyReader::new(body);
        let writer = send(out, response);
        let Ok(echoed) = reader.copy_to(&writer) else {
            return;
        };
        let trailers = trailers.then(|| {
            let echoed = echoed.to_string();
            fields(&[("x-trailer", b"done"), ("x-bytes", echoed.as_bytes())])
                .expect("valid trailers")
        });
        let _ = writer.finish(trailers);
    }
}

wasi::http::proxy::export!(Echo);
