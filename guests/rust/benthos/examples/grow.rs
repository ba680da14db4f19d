//! `BENTHOS_LOUDER` that leaks a fresh 64 KiB allocation, written to, on
//! every message: its memory grows on each one. Tests: memory limits across
//! messages of one instance.

use wafer_guest_benthos::benthos::{louder, message};

#[unsafe(no_mangle)]
pub extern "C" fn process() {
    let mut leak = vec![0u8; 64 * 1024];
    leak.fill(0xA5);
    std::mem::forget(std::hint::black_box(leak));
    louder(message());
}
