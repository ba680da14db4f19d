//! A `wasm` filter (json mode) that answers what the record's `answer`
//! asks for, to cover every answer rule: `null` (NULL), `empty` (an empty
//! string), `array`, `string`, `text` (not JSON), `outside` (a pointer
//! outside memory), `unterminated` (an object cut short at the end of
//! memory), `trap`, `spin` (loops forever); any other record is answered
//! as it came, the host's own NUL-terminated copy.

use serde_json::Value;
use wafer_guest_fluentbit::bytes;

static EMPTY: &[u8] = b"\0";
static ARRAY: &[u8] = b"[1,2]\0";
static STRING: &[u8] = b"\"a string\"\0";
static TEXT: &[u8] = b"not json\0";

#[unsafe(no_mangle)]
pub extern "C" fn filter_answer(
    _tag: *const u8,
    _tag_len: u32,
    _time_sec: u32,
    _time_nsec: u32,
    record: *const u8,
    record_len: u32,
) -> *const u8 {
    let parsed: Value = serde_json::from_slice(unsafe { bytes(record, record_len) }).unwrap();
    match parsed["answer"].as_str().unwrap_or("") {
        "null" => std::ptr::null(),
        "empty" => EMPTY.as_ptr(),
        "array" => ARRAY.as_ptr(),
        "string" => STRING.as_ptr(),
        "text" => TEXT.as_ptr(),
        "outside" => 0xFFFF_FFF0usize as *const u8,
        "unterminated" => unterminated(),
        "trap" => core::arch::wasm32::unreachable(),
        "spin" => loop {
            std::hint::spin_loop();
        },
        _ => record,
    }
}

/// `{"cut":` written at the very end of memory: nothing completes it.
fn unterminated() -> *const u8 {
    const CUT: &[u8] = b"{\"cut\":";
    let end = core::arch::wasm32::memory_size(0) * 65536;
    let at = (end - CUT.len()) as *mut u8;
    unsafe { std::ptr::copy_nonoverlapping(CUT.as_ptr(), at, CUT.len()) };
    at
}
