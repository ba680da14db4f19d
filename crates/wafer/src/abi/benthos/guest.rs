//! The guest's memory, as Benthos' host functions move messages through
//! it: copies in through the guest's allocator, copies out of buffers the
//! guest hands over, and what is given back to the allocator and when.

use bytes::Bytes;
use wasmtime::{AsContextMut, Caller, Memory, Store, TypedFunc};

use super::Mode;
use crate::abi::core_module::call;
use crate::host::HostState;
use crate::message::Message;

/// How the guest allocates: `allocate(len) -> ptr` with
/// `deallocate(ptr, len)` (Benthos' Rust example), or `malloc(len) -> ptr`
/// with `free(ptr)` (TinyGo). With both, `allocate` wins, as in Benthos.
pub(super) struct Allocator {
    /// `allocate` or `malloc`.
    pub alloc: TypedFunc<u32, u32>,
    /// `deallocate` or `free`; a guest may export neither (Benthos then
    /// frees nothing either).
    pub free: Option<Free>,
    /// Whether the copies the host made may be given back: `alloc` proved
    /// to hand out distinct buffers ([`probe`]).
    pub frees_copies: bool,
}

/// The guest's free function.
pub(super) enum Free {
    /// `deallocate(ptr, len)`: the Rust style, where the host also gives
    /// back every buffer the guest hands over (Benthos' Rust example
    /// forgets its output and relies on it).
    Deallocate(TypedFunc<(u32, u32), ()>),
    /// `free(ptr)`: the TinyGo style, where the guest's buffers stay the
    /// guest's (TinyGo hands over slices of its own heap, which `free`
    /// refuses).
    Free(TypedFunc<u32, ()>),
}

/// A region of guest memory the host allocated for one message.
#[derive(Clone, Copy)]
pub(super) struct Region {
    pub ptr: u32,
    pub len: u32,
}

impl Region {
    /// Whether `ptr` points into the region (an in-place guest may hand
    /// back a slice of it); an empty region holds nothing.
    fn holds(&self, ptr: u32) -> bool {
        ptr.checked_sub(self.ptr)
            .is_some_and(|offset| offset < self.len)
    }
}

/// What one instance keeps: its exports, and the message being processed.
pub(super) struct Processing {
    pub process: TypedFunc<(), ()>,
    pub memory: Memory,
    /// Lent out (taken, then put back) for each call into the guest:
    /// cloning a `TypedFunc` clones its registered type, a cost every host
    /// call would pay.
    pub allocator: Option<Allocator>,
    /// The guest's `__heap_base`, when it exports it: nothing below it
    /// came from its allocator.
    pub heap_base: u32,
    /// The message `process` is working on.
    pub message: Option<Message>,
    /// What a host function failed at, for the message.
    pub error: Option<String>,
    /// The buffers the host allocated for this message, not yet freed.
    pub inbound: Vec<Region>,
    /// The host's copies already given back while this message was
    /// processed: a second slice of one is not given back again.
    pub given_back: Vec<Region>,
    /// The instance failed on a message: replace it before the next.
    pub failed: bool,
}

/// The state of a Benthos instance, once it is set up ([`is_set_up`]).
pub(super) fn processing(host: &mut HostState) -> &mut Processing {
    host.abi_state_mut::<Processing>()
        .expect("a Benthos instance keeps its exports")
}

/// Whether the instance's state is there: a module's `start` section runs
/// before it is, and may call a host function.
pub(super) fn is_set_up(host: &mut HostState) -> bool {
    host.abi_state_mut::<Processing>().is_some()
}

/// Decides whether the host may give back the copies it makes: two
/// allocations that answer the same address mean `alloc` does not really
/// allocate (Benthos' own Rust example answers every `allocate` with the
/// dangling pointer 1: its `with_capacity(n).into_boxed_slice()` keeps no
/// capacity), and freeing what it answers would corrupt the guest's heap.
/// Benthos never frees these copies in the Rust style, so such a guest
/// runs there; it runs here too, and a real allocator's copies are freed.
pub(super) async fn probe(mode: Mode, store: &mut Store<HostState>) -> wasmtime::Result<()> {
    let Some(mut allocator) = processing(store.data_mut()).allocator.take() else {
        return Ok(());
    };
    let probed = async {
        let first = call_alloc(mode, &mut *store, &allocator, 8).await?;
        let second = call_alloc(mode, &mut *store, &allocator, 8).await?;
        let distinct = first != second && first != 0 && second != 0;
        if distinct && let Some(free) = &allocator.free {
            for ptr in [first, second] {
                call_free(mode, &mut *store, free, Region { ptr, len: 8 }).await?;
            }
        }
        Ok(distinct && allocator.free.is_some())
    }
    .await;
    if let Ok(frees) = probed {
        allocator.frees_copies = frees;
    }
    processing(store.data_mut()).allocator = Some(allocator);
    probed.map(drop)
}

/// Frees what the host allocated for the message just processed.
pub(super) async fn free_inbound(mode: Mode, store: &mut Store<HostState>) -> wasmtime::Result<()> {
    let state = processing(store.data_mut());
    state.given_back.clear();
    if state.inbound.is_empty() {
        return Ok(());
    }
    let heap_base = state.heap_base;
    let allocator = match state.allocator.take() {
        Some(allocator) if allocator.frees_copies => allocator,
        other => {
            state.allocator = other;
            state.inbound.clear();
            return Ok(());
        }
    };
    let mut released = Ok(());
    while let Some(region) = processing(store.data_mut()).inbound.pop() {
        released = release(mode, &mut *store, &allocator, heap_base, region).await;
        if released.is_err() {
            break;
        }
    }
    processing(store.data_mut()).allocator = Some(allocator);
    released
}

/// Copies `bytes` into a buffer from the guest's allocator, remembered to
/// be freed after the message; its address, or why there is none. A trap
/// in the allocator is an error.
pub(super) async fn copy_in(
    mode: Mode,
    caller: &mut Caller<'_, HostState>,
    bytes: &[u8],
) -> wasmtime::Result<Result<u32, String>> {
    let state = processing(caller.data_mut());
    let memory = state.memory;
    let Some(allocator) = state.allocator.take() else {
        return Ok(Err("the guest exports neither allocate nor malloc".into()));
    };
    let len = bytes.len() as u32;
    let allocated = call_alloc(mode, &mut *caller, &allocator, len).await;
    processing(caller.data_mut()).allocator = Some(allocator);
    let ptr = allocated?;
    if ptr == 0 && len > 0 {
        return Ok(Err(format!(
            "the allocator found no room for {len} bytes (it answered 0)"
        )));
    }
    let buffer = (ptr as usize)
        .checked_add(bytes.len())
        .and_then(|end| memory.data_mut(&mut *caller).get_mut(ptr as usize..end));
    match buffer {
        Some(buffer) => buffer.copy_from_slice(bytes),
        None => {
            return Ok(Err(format!(
                "the allocator answered {ptr:#x}, outside memory"
            )));
        }
    }
    processing(caller.data_mut())
        .inbound
        .push(Region { ptr, len });
    Ok(Ok(ptr))
}

/// Copies a buffer the guest handed over out of its memory; in the Rust
/// style, then gives it back with `deallocate`: a buffer of the host's
/// (an in-place guest hands back the message's own, or a slice of it) is
/// given back whole and taken off the list of those to free, so never
/// twice.
pub(super) async fn copy_out(
    mode: Mode,
    caller: &mut Caller<'_, HostState>,
    ptr: u32,
    len: u32,
) -> wasmtime::Result<Result<Bytes, String>> {
    let state = processing(caller.data_mut());
    let (memory, heap_base) = (state.memory, state.heap_base);
    let Some(bytes) = (ptr as usize)
        .checked_add(len as usize)
        .and_then(|end| memory.data(&*caller).get(ptr as usize..end))
        .map(Bytes::copy_from_slice)
    else {
        return Ok(Err(format!(
            "prevented read of {len} bytes at {ptr:#x}, outside memory"
        )));
    };
    let state = processing(caller.data_mut());
    let gives_back = matches!(
        state.allocator,
        Some(Allocator {
            free: Some(Free::Deallocate(_)),
            ..
        })
    );
    if !gives_back {
        return Ok(Ok(bytes));
    }
    if state.given_back.iter().any(|region| region.holds(ptr)) {
        return Ok(Ok(bytes));
    }
    let region = match state.inbound.iter().position(|region| region.holds(ptr)) {
        Some(at) if state.allocator.as_ref().is_some_and(|a| a.frees_copies) => {
            let region = state.inbound.swap_remove(at);
            state.given_back.push(region);
            region
        }
        // A copy the allocator cannot take back stays where it is.
        Some(_) => return Ok(Ok(bytes)),
        None => Region { ptr, len },
    };
    let allocator = state.allocator.take().expect("matched above");
    let released = release(mode, &mut *caller, &allocator, heap_base, region).await;
    processing(caller.data_mut()).allocator = Some(allocator);
    released.map(|()| Ok(bytes))
}

/// Gives `region` back to the guest's allocator, unless it lies below the
/// heap (it then never came from the allocator) or the guest has no free
/// function.
async fn release(
    mode: Mode,
    store: impl AsContextMut<Data = HostState>,
    allocator: &Allocator,
    heap_base: u32,
    region: Region,
) -> wasmtime::Result<()> {
    match &allocator.free {
        Some(free) if region.ptr >= heap_base => call_free(mode, store, free, region).await,
        _ => Ok(()),
    }
}

/// `allocate(len)` or `malloc(len)`.
async fn call_alloc(
    mode: Mode,
    mut store: impl AsContextMut<Data = HostState>,
    allocator: &Allocator,
    len: u32,
) -> wasmtime::Result<u32> {
    call(mode, &mut store, &allocator.alloc, len).await
}

/// `deallocate(ptr, len)` or `free(ptr)`.
async fn call_free(
    mode: Mode,
    mut store: impl AsContextMut<Data = HostState>,
    free: &Free,
    region: Region,
) -> wasmtime::Result<()> {
    match free {
        Free::Deallocate(f) => call(mode, &mut store, f, (region.ptr, region.len)).await,
        Free::Free(f) => call(mode, &mut store, f, region.ptr).await,
    }
}
