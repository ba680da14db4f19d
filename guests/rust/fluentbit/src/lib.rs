//! Shared by the Fluent Bit guests: the filter's arguments read as Fluent
//! Bit passes them.

use std::slice;

/// The `len` bytes at `ptr` the host copied into guest memory.
///
/// # Safety
/// `ptr..ptr + len` must be the buffer the host passed.
pub unsafe fn bytes<'a>(ptr: *const u8, len: u32) -> &'a [u8] {
    unsafe { slice::from_raw_parts(ptr, len as usize) }
}
