//! Reads metadata `name` (the key in a buffer of its own, forgotten), sets
//! metadata `greeting` to "hello <name>" and the message to
//! "<name>:<message>", all handed over and forgotten; the message and the
//! value it read are the host's to free. Tests: metadata in and out, and
//! who frees which buffer.

use wafer_guest_benthos::benthos::{message, meta, set_message, set_meta};

#[unsafe(no_mangle)]
pub extern "C" fn process() {
    let message = message();
    let name = meta("name");
    set_meta("greeting", [b"hello ", name].concat());
    set_message([name, b":", message].concat());
}
