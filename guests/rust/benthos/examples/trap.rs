//! `BENTHOS_LOUDER`, but executes `unreachable` when the message is exactly
//! "trap". Tests: a trapping processor.

use wafer_guest_benthos::benthos::{louder, message};

#[unsafe(no_mangle)]
pub extern "C" fn process() {
    let message = message();
    if message == b"trap" {
        core::arch::wasm32::unreachable();
    }
    louder(message);
}
