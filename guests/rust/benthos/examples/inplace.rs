//! Uppercases the ASCII of the message in the host's own buffer and hands
//! that same buffer back to `v0_msg_set_bytes`; frees nothing itself.
//! Tests: the host deallocates that buffer once, not again after `process`.

use wafer_guest_benthos::benthos::{v0_msg_as_bytes, v0_msg_set_bytes};
use wafer_guest_benthos::buffer;

#[unsafe(no_mangle)]
pub extern "C" fn process() {
    let ptr_len = unsafe { v0_msg_as_bytes() };
    unsafe { buffer(ptr_len) }.make_ascii_uppercase();
    // The very pointer and length the host gave, an empty message's too.
    unsafe { v0_msg_set_bytes((ptr_len >> 32) as u32, ptr_len as u32) };
}
