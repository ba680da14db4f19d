//! A `wasm` filter in msgpack mode, shaped like Fluent Bit's
//! `examples/filter_rust_msgpack`: decodes the record map, adds
//! `"platform": "wasm"` and the tag, and answers the map as msgpack, with
//! no NUL after it (strings holding zero bytes stay whole).

use std::cell::RefCell;

use rmpv::Value;
use wafer_guest_fluentbit::bytes;

thread_local! {
    /// The last answer, kept until the next record: the host reads it
    /// after the call.
    static ANSWER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

#[unsafe(no_mangle)]
pub extern "C" fn filter_msgpack(
    tag: *const u8,
    tag_len: u32,
    _time_sec: u32,
    _time_nsec: u32,
    record: *const u8,
    record_len: u32,
) -> *const u8 {
    let tag = std::str::from_utf8(unsafe { bytes(tag, tag_len) }).unwrap();
    let mut record_bytes = unsafe { bytes(record, record_len) };
    let mut map = match rmpv::decode::read_value(&mut record_bytes).unwrap() {
        Value::Map(map) => map,
        other => panic!("a record is a map, not {other}"),
    };
    map.push(("platform".into(), "wasm".into()));
    map.push(("tag".into(), tag.into()));
    ANSWER.with_borrow_mut(|answer| {
        answer.clear();
        rmpv::encode::write_value(answer, &Value::Map(map)).unwrap();
        answer.as_ptr()
    })
}
