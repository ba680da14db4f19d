//! `BENTHOS_LOUDER`, but when the message is "oob" hands
//! `v0_msg_set_bytes` 100 bytes at 0xFFFF0000, outside its memory. Tests:
//! the host checks the guest's pointers.

use wafer_guest_benthos::benthos::{louder, message, v0_msg_set_bytes};

#[unsafe(no_mangle)]
pub extern "C" fn process() {
    let message = message();
    if message == b"oob" {
        unsafe { v0_msg_set_bytes(0xFFFF_0000, 100) };
        return;
    }
    louder(message);
}
