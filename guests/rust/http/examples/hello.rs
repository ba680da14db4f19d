//! The benchmark's hello world: answers every request 200 with
//! `content-type: text/plain` and the body `Hello, world!\n`, without
//! reading the request and without allocating.

use wafer_guest_http::respond;
use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Hello;

impl Guest for Hello {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        respond(out, 200, "text/plain", b"Hello, world!\n");
    }
}

wasi::http::proxy::export!(Hello);
