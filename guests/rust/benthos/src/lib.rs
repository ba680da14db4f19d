//! Shared by the Benthos guests: the host's functions, imported from
//! `benthos_wasm` ([`benthos`]) or from `bento_wasm` ([`bento`]), and the
//! `allocate`/`deallocate` exports of the allocate-style guests.
//!
//! Who frees what in the allocate style: a buffer the host allocated (the
//! message from `v0_msg_as_bytes`, a value from `v0_msg_get_meta`) is the
//! host's, freed after `process` returns; a buffer the guest hands over (to
//! `v0_msg_set_bytes`, `v0_msg_set_meta`, or a key to `v0_msg_get_meta`) is
//! deallocated by the host as soon as it has copied it, so the guest forgets
//! it. In the malloc/free style (src/bin) the host frees only its own.

use std::slice;

/// Benthos' example appends this to each message.
pub const LOUDER: &[u8] = b"!!!!111!!11!";

/// Allocates `size` bytes for the host to write an inbound buffer into;
/// `allocate(0)` gives a dangling pointer, never dereferenced. Not in the
/// wasip1 commands: a binary exports every `no_mangle` function too, and the
/// host would take them for the allocate style.
#[cfg(not(target_os = "wasi"))]
#[unsafe(no_mangle)]
pub extern "C" fn allocate(size: u32) -> *mut u8 {
    let mut buffer = Vec::<u8>::with_capacity(size as usize);
    let ptr = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    ptr
}

/// Frees `size` bytes from [`allocate`] or [`hand_over`]: `with_capacity`
/// and boxed slices allocate exactly their size, so the layouts match.
///
/// # Safety
/// `ptr` and `size` must come from one of those, freed only once.
#[cfg(not(target_os = "wasi"))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn deallocate(ptr: *mut u8, size: u32) {
    drop(unsafe { Vec::from_raw_parts(ptr, 0, size as usize) });
}

/// Leaks `bytes` for the host, which deallocates them: their pointer and
/// length, with the capacity cut to the length.
pub fn hand_over(bytes: Vec<u8>) -> (u32, u32) {
    let len = bytes.len() as u32;
    (
        Box::into_raw(bytes.into_boxed_slice()) as *mut u8 as u32,
        len,
    )
}

/// The buffer a host function returned as `ptr << 32 | len`.
///
/// # Safety
/// It must be the host's answer, still allocated: it stays valid until
/// `process` returns (or until handed back), hence `'static`.
pub unsafe fn buffer(ptr_len: u64) -> &'static mut [u8] {
    let (ptr, len) = ((ptr_len >> 32) as usize, ptr_len as u32 as usize);
    if len == 0 {
        return &mut [];
    }
    unsafe { slice::from_raw_parts_mut(ptr as *mut u8, len) }
}

/// One module per import module name, with the same functions.
macro_rules! host {
    ($(#[$doc:meta])* $name:ident = $module:literal) => {
        $(#[$doc])*
        pub mod $name {
            use crate::{buffer, hand_over};

            #[link(wasm_import_module = $module)]
            unsafe extern "C" {
                /// The message, copied into a buffer the host allocated
                /// with the guest's allocator, as `ptr << 32 | len`.
                pub fn v0_msg_as_bytes() -> u64;
                /// Replaces the message with `[ptr, ptr + len)`.
                pub fn v0_msg_set_bytes(ptr: u32, len: u32);
                /// A metadata value ("" if missing), like `v0_msg_as_bytes`.
                pub fn v0_msg_get_meta(key_ptr: u32, key_len: u32) -> u64;
                /// Sets a metadata value.
                pub fn v0_msg_set_meta(key_ptr: u32, key_len: u32, value_ptr: u32, value_len: u32);
            }

            /// The message, in the host's buffer (never freed here): call it
            /// once per `process`.
            pub fn message() -> &'static mut [u8] {
                unsafe { buffer(v0_msg_as_bytes()) }
            }

            /// The value of metadata `key`, in the host's buffer; the key
            /// goes over in a buffer of ours, forgotten.
            pub fn meta(key: &str) -> &'static [u8] {
                let (ptr, len) = hand_over(key.as_bytes().to_vec());
                unsafe { buffer(v0_msg_get_meta(ptr, len)) }
            }

            /// Replaces the message with `bytes`, forgotten.
            pub fn set_message(bytes: Vec<u8>) {
                let (ptr, len) = hand_over(bytes);
                unsafe { v0_msg_set_bytes(ptr, len) }
            }

            /// Sets metadata `key` to `value`, both forgotten.
            pub fn set_meta(key: &str, value: Vec<u8>) {
                let (key_ptr, key_len) = hand_over(key.as_bytes().to_vec());
                let (value_ptr, value_len) = hand_over(value);
                unsafe { v0_msg_set_meta(key_ptr, key_len, value_ptr, value_len) }
            }

            /// What Benthos' example does: the message becomes a copy of
            /// it plus [`LOUDER`](crate::LOUDER), forgotten.
            pub fn louder(message: &[u8]) {
                set_message([message, crate::LOUDER].concat());
            }
        }
    };
}

host!(
    /// Benthos' imports, module `benthos_wasm`.
    benthos = "benthos_wasm"
);
host!(
    /// Bento's imports, module `bento_wasm` (the same functions).
    bento = "bento_wasm"
);
