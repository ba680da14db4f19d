//! Benthos' own Rust example: the message plus "!!!!111!!11!", handed
//! over and forgotten, relying on the host to `deallocate` it. Tests: the
//! allocate/deallocate style of Benthos' wasm processor.

use wafer_guest_benthos::benthos::{louder, message};

#[unsafe(no_mangle)]
pub extern "C" fn process() {
    louder(message());
}
