//! A request whose path is `/loop` or ends with `/loop` (the query aside)
//! never returns: the guest spins forever without answering, until the
//! host interrupts it. Any other request is answered 200 with
//! `content-type: text/plain` and the body `ok`.

use std::hint::black_box;
use wafer_guest_http::{path, respond};
use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct BusyLoop;

impl Guest for BusyLoop {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        if path(&path_with_query).ends_with("/loop") {
            // black_box keeps the optimiser from proving the loop empty.
            let mut spins = 0u64;
            loop {
                spins = black_box(spins).wrapping_add(1);
            }
        }
        respond(out, 200, "text/plain", b"ok");
    }
}

wasi::http::proxy::export!(BusyLoop);
