//! A `wasm` filter (json mode) built as a wasip1 command, shaped like a
//! TinyGo filter: it exports `malloc`/`free` and runs on WASI. Each call
//! appends the record to `calls.log` in its working directory (granted by
//! `accessible_paths`), then answers the record as it came; a record
//! holding `"trap"` makes it trap after logging. Tests: each record is
//! filtered once, even when one traps.

use std::io::Write;

#[unsafe(no_mangle)]
pub extern "C" fn filter_log(
    _tag: *const u8,
    _tag_len: u32,
    _time_sec: u32,
    _time_nsec: u32,
    record: *const u8,
    record_len: u32,
) -> *const u8 {
    let bytes = unsafe { wafer_guest_fluentbit::bytes(record, record_len) };
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open("calls.log")
        .expect("calls.log is writable");
    // One write: appends of two instances never interleave inside a line.
    log.write_all(&[bytes, b"\n"].concat()).unwrap();
    if bytes.windows(6).any(|w| w == b"\"trap\"") {
        std::process::abort();
    }
    record
}

fn main() {}
