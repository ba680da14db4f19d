//! A command in TinyGo's style: `_start` (its `main`) fills an uppercase
//! table that `process` needs, trapping without it; exports `process` and
//! libc's `malloc` and `free`. `process` uppercases the message into a Vec
//! of its own, hands it to `v0_msg_set_bytes` and drops it afterwards (the
//! host frees only the buffers it allocated). Tests: the malloc/free style,
//! and `_start` run before the first message.

use std::sync::OnceLock;
use wafer_guest_benthos::benthos::{message, v0_msg_set_bytes};

/// Byte to uppercase byte, filled by `main`.
static UPPER: OnceLock<[u8; 256]> = OnceLock::new();

fn main() {
    UPPER.get_or_init(|| std::array::from_fn(|b| (b as u8).to_ascii_uppercase()));
}

#[unsafe(no_mangle)]
pub extern "C" fn process() {
    let Some(upper) = UPPER.get() else {
        // `_start` did not run.
        core::arch::wasm32::unreachable();
    };
    let upper: Vec<u8> = message().iter().map(|&b| upper[b as usize]).collect();
    unsafe { v0_msg_set_bytes(upper.as_ptr() as u32, upper.len() as u32) };
    drop(upper);
}
