//! A `wasm` filter in json mode that parses the record with serde_json,
//! adds `"filtered": true` and serialises it again, answering a
//! NUL-terminated copy it keeps until the next record: the benchmark's
//! filter.

use std::cell::RefCell;

use serde_json::{Map, Value};
use wafer_guest_fluentbit::bytes;

thread_local! {
    /// The last answer, kept until the next record: the host reads it
    /// after the call.
    static ANSWER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

#[unsafe(no_mangle)]
pub extern "C" fn filter_serde(
    _tag: *const u8,
    _tag_len: u32,
    _time_sec: u32,
    _time_nsec: u32,
    record: *const u8,
    record_len: u32,
) -> *const u8 {
    let mut map: Map<String, Value> =
        serde_json::from_slice(unsafe { bytes(record, record_len) }).unwrap();
    map.insert("filtered".into(), Value::Bool(true));
    ANSWER.with_borrow_mut(|answer| {
        answer.clear();
        serde_json::to_writer(&mut *answer, &map).unwrap();
        answer.push(0);
        answer.as_ptr()
    })
}
