//! `BENTHOS_LOUDER` importing from `bento_wasm`, as Bento (Benthos' fork)
//! names the module. Tests: both module names are served.

use wafer_guest_benthos::bento::{louder, message};

#[unsafe(no_mangle)]
pub extern "C" fn process() {
    louder(message());
}
