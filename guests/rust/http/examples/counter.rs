//! Counts the requests its instance has handled in a static and answers
//! each 200 with `content-type: text/plain` and the count as text (`1`,
//! `2`, ...): a fresh instance per request always answers `1`, a reused
//! one counts up.

use std::sync::atomic::{AtomicU64, Ordering};
use wafer_guest_http::respond;
use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

static REQUESTS: AtomicU64 = AtomicU64::new(0);

struct Counter;

impl Guest for Counter {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let count = REQUESTS.fetch_add(1, Ordering::Relaxed) + 1;
        respond(out, 200, "text/plain", count.to_string().as_bytes());
    }
}

wasi::http::proxy::export!(Counter);
