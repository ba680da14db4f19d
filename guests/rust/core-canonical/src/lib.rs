//! A core module that follows the canonical ABI by hand, the way a
//! toolchain without component support would: it exports `memory`,
//! `cabi_realloc` and functions whose core signatures are the flattened
//! forms of
//!
//! ```wit
//! add: func(a: s32, b: s32) -> s32;
//! greet: func(name: string) -> string;
//! sum: func(values: list<s32>) -> s64;
//! ```
#![no_std]

extern crate alloc;

use alloc::alloc::{Layout, alloc, realloc};
use alloc::vec::Vec;
use core::slice;

#[global_allocator]
static ALLOCATOR: Bump = Bump;

/// A tiny bump allocator: enough for a test guest, and no dependency.
struct Bump;

static mut NEXT: usize = 0;

unsafe impl core::alloc::GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe {
            if NEXT == 0 {
                NEXT = core::arch::wasm32::memory_size(0) * 65536;
            }
            let start = (NEXT + layout.align() - 1) & !(layout.align() - 1);
            let end = start + layout.size();
            let have = core::arch::wasm32::memory_size(0) * 65536;
            if end > have {
                let pages = (end - have).div_ceil(65536);
                if core::arch::wasm32::memory_grow(0, pages) == usize::MAX {
                    return core::ptr::null_mut();
                }
            }
            NEXT = end;
            start as *mut u8
        }
    }
    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cabi_realloc(old: *mut u8, old_size: usize, align: usize, new_size: usize) -> *mut u8 {
    unsafe {
        let layout = Layout::from_size_align_unchecked(new_size, align);
        if old.is_null() {
            alloc(layout)
        } else {
            realloc(old, Layout::from_size_align_unchecked(old_size, align), new_size)
        }
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn add(a: i32, b: i32) -> i32 {
    a.wrapping_add(b)
}

/// Where string and list results are returned: (pointer, length).
static mut RETURN_AREA: [usize; 2] = [0, 0];

#[unsafe(no_mangle)]
pub unsafe extern "C" fn greet(ptr: *const u8, len: usize) -> *const usize {
    unsafe {
        let name = slice::from_raw_parts(ptr, len);
        let mut out = Vec::with_capacity(len + 7);
        out.extend_from_slice(b"hello, ");
        out.extend_from_slice(name);
        let out = out.leak();
        RETURN_AREA = [out.as_ptr() as usize, out.len()];
        core::ptr::addr_of!(RETURN_AREA).cast()
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn sum(ptr: *const i32, len: usize) -> i64 {
    unsafe { slice::from_raw_parts(ptr, len).iter().map(|&v| i64::from(v)).sum() }
}
