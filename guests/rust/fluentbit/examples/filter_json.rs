//! A `wasm` filter in json mode shaped exactly like Fluent Bit's
//! `examples/filter_rust`: parses the record with serde_json, answers a
//! new object holding the tag, the time and the original, and returns a
//! pointer into the answer's buffer after dropping it, with no NUL after
//! the JSON.

use serde_json::{Value, json};
use wafer_guest_fluentbit::bytes;

#[unsafe(no_mangle)]
pub extern "C" fn filter_json(
    tag: *const u8,
    tag_len: u32,
    time_sec: u32,
    time_nsec: u32,
    record: *const u8,
    record_len: u32,
) -> *const u8 {
    let tag = std::str::from_utf8(unsafe { bytes(tag, tag_len) }).unwrap();
    let v: Value = serde_json::from_slice(unsafe { bytes(record, record_len) }).unwrap();
    let message = json!({
        "message": v["message"],
        "time": format!("{time_sec}.{time_nsec:09}"),
        "tag": tag,
        "original": v.to_string(),
        "lang": "Rust",
    });
    let buf: String = message.to_string();
    // Dropped at the end of this function, as in Fluent Bit's example.
    buf.as_ptr()
}
