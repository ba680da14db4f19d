//! A request whose path is `/loop` or ends with `/loop` (the query aside)
//! never returns: the guest spins forever without answering, until the
//! host interrupts it. One ending with `/stream-then-loop` is answered 200
//! with a body that starts `partial` and never ends: the guest spins once
//! it wrote that. One ending with `/short` is answered 200 with
//! `content-length: 10` and the body `short`: the guest returns without
//! finishing it. Any other request is answered 200 with
//! `content-type: text/plain` and the body `ok`.

use std::hint::black_box;
use wafer_guest_http::{path, respond, send};
use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};

struct BusyLoop;

impl Guest for BusyLoop {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let path = path(&path_with_query);
        if path.ends_with("/stream-then-loop") {
            let writer = send(out, OutgoingResponse::new(Fields::new()));
            let _ = writer.write_all(b"partial");
            spin();
        }
        if path.ends_with("/loop") {
            spin();
        }
        if path.ends_with("/short") {
            let headers = Fields::new();
            let _ = headers.append("content-length", b"10");
            let writer = send(out, OutgoingResponse::new(headers));
            let _ = writer.write_all(b"short");
            // Dropped unfinished, five bytes short.
            return;
        }
        respond(out, 200, "text/plain", b"ok");
    }
}

fn spin() -> ! {
    // black_box keeps the optimiser from proving the loop empty.
    let mut spins = 0u64;
    loop {
        spins = black_box(spins).wrapping_add(1);
    }
}

wasi::http::proxy::export!(BusyLoop);
