//! `abi: benthos`, Benthos' `wasm` processor: a core module called once
//! per message, reading and rewriting it through host functions.
//!
//! Guest contract, as Benthos' `internal/impl/wasm` defines it:
//!
//! * host module `benthos_wasm` (Bento's fork: `bento_wasm`, the same
//!   functions; a guest may import either):
//!   - `v0_msg_as_bytes() -> i64`: the host copies the message into a buffer
//!     it allocates in guest memory; `ptr << 32 | len`;
//!   - `v0_msg_set_bytes(ptr: i32, len: i32)`: the message becomes those
//!     bytes;
//!   - `v0_msg_get_meta(key_ptr, key_len) -> i64`: a metadata value, copied
//!     like the message (a missing key is empty);
//!   - `v0_msg_set_meta(key_ptr, key_len, val_ptr, val_len)`;
//! * the export named by `method` (default `process`), no parameters, no
//!   results, called once per message;
//! * an allocator the host copies into: `allocate(len) -> ptr` and
//!   `deallocate(ptr, len)` (Benthos' Rust example), or `malloc(len) -> ptr`
//!   and `free(ptr)` (TinyGo); with both, `allocate` wins, as in Benthos;
//! * optionally `_initialize` or `_start`, run once per instance before its
//!   first message, as wazero does at instantiation (TinyGo's runtime needs
//!   it); `wasi_snapshot_preview1` is linked with nothing granted.
//!
//! Memory ownership, as Benthos has it and tighter where Benthos leaks:
//!
//! * in the `allocate` style, every buffer the host reads from the guest
//!   (the bytes of `set_bytes`, key and value of `set_meta`, the key of
//!   `get_meta`) is given back with `deallocate(ptr, len)` once copied:
//!   Benthos' Rust example forgets its output and relies on it;
//! * in the `malloc` style the guest's buffers stay the guest's: TinyGo
//!   hands over slices of its own heap, which `free` would refuse;
//! * the buffers the host allocated for a message are freed after
//!   `process` returns (Benthos frees them only in the `malloc` style, so a
//!   long stream grows a Rust guest's memory without bound); one the guest
//!   handed back to `set_bytes` (an in-place guest) was already given back
//!   and is not freed twice;
//! * nothing below the guest's `__heap_base` (when it exports it) is ever
//!   given to its allocator: it is not heap memory.
//!
//! A host function that cannot do its work (a pointer outside memory, no
//! allocator) flags the message with the error and processing goes on, as
//! in Benthos; a trap fails the message and discards the instance.
//!
//! A guest that imports nothing from WASI (`wasm32-unknown-unknown`, as
//! Benthos' Rust example is built) runs synchronously on the caller's
//! thread; one that imports WASI runs on a fiber.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use wasmtime::{Caller, Engine, Extern, Instance, InstancePre, Linker, Memory, Store, TypedFunc};
use wasmtime_wasi::I32Exit;

use super::{Abi, Answer, Fault, LoadContext, LoadError, Prepared, Site, Step};
use crate::call::{Input, InputForm, Output};
use crate::error::ProblemKind;
use crate::host::HostState;
use crate::message::Message;
use crate::wasi::Stdin;

/// The host module Benthos' guests import.
const BENTHOS_MODULE: &str = "benthos_wasm";
/// The same host module under the Bento fork's name.
const BENTO_MODULE: &str = "bento_wasm";
/// The host functions both modules export.
const HOST_FUNCTIONS: [&str; 4] = [
    "v0_msg_as_bytes",
    "v0_msg_set_bytes",
    "v0_msg_get_meta",
    "v0_msg_set_meta",
];
/// The preview 1 import module.
const WASI_P1: &str = "wasi_snapshot_preview1";
/// Benthos' default for the processor's `function`.
const DEFAULT_EXPORT: &str = "process";

/// `abi: benthos`.
pub(crate) struct Benthos;

impl Abi for Benthos {
    fn load(&self, cx: &LoadContext<'_>, module: &[u8]) -> Result<Box<dyn Prepared>, LoadError> {
        Ok(Box::new(MessageProcessor::load(cx, module)?))
    }
}

/// A Benthos guest, compiled and pre-linked.
struct MessageProcessor {
    pre: InstancePre<HostState>,
    export: String,
    signature: String,
    /// No WASI imports: instantiate and call without a fiber.
    sync: bool,
}

/// How a host function calls back into the guest (its allocator): directly
/// in a synchronous store, through `call_async` on a fiber otherwise.
#[derive(Clone, Copy)]
enum Mode {
    Sync,
    Async,
}

/// The guest's allocator exports.
#[derive(Clone)]
enum Allocator {
    /// `allocate(len) -> ptr`, `deallocate(ptr, len)`.
    Rust {
        allocate: TypedFunc<u32, u32>,
        deallocate: TypedFunc<(u32, u32), ()>,
    },
    /// `malloc(len) -> ptr`, `free(ptr)`.
    C {
        malloc: TypedFunc<u32, u32>,
        free: TypedFunc<u32, ()>,
    },
}

/// A region of guest memory the host allocated for one message.
#[derive(Clone, Copy)]
struct Region {
    ptr: u32,
    len: u32,
}

/// What one instance keeps: its exports, and the message being processed.
struct Processing {
    process: TypedFunc<(), ()>,
    memory: Memory,
    /// Lent out (taken, then put back) for each call into the guest:
    /// cloning a `TypedFunc` clones its registered type, a cost every host
    /// call would pay.
    allocator: Option<Allocator>,
    /// The guest's `__heap_base`, when it exports it: nothing below it
    /// came from its allocator.
    heap_base: u32,
    /// The message `process` is working on.
    message: Option<Message>,
    /// What a host function failed at, for the message.
    error: Option<String>,
    /// The buffers the host allocated for this message, not yet freed.
    inbound: Vec<Region>,
}

impl MessageProcessor {
    fn load(cx: &LoadContext<'_>, bytes: &[u8]) -> Result<Self, LoadError> {
        let field = cx.source_field;
        if !wasmparser::Parser::is_core_wasm(bytes) {
            return Err(LoadError::new(
                ProblemKind::InvalidModule,
                field,
                "a Benthos guest is a core WebAssembly module, not a component",
            ));
        }
        let module = cx.compiler.module(bytes).map_err(|e| {
            LoadError::new(
                ProblemKind::InvalidModule,
                field,
                format!("not a loadable WebAssembly binary: {e:#}"),
            )
        })?;
        let mut imports_wasi = false;
        for import in module.imports() {
            let known = match import.module() {
                BENTHOS_MODULE | BENTO_MODULE => HOST_FUNCTIONS.contains(&import.name()),
                WASI_P1 => {
                    imports_wasi = true;
                    true
                }
                _ => false,
            };
            if !known {
                return Err(LoadError::new(
                    ProblemKind::Import,
                    field,
                    format!(
                        "imports {}::{}, which wafer does not provide (a Benthos guest imports {BENTHOS_MODULE} or {BENTO_MODULE}: {}; and {WASI_P1})",
                        import.module(),
                        import.name(),
                        HOST_FUNCTIONS.join(", ")
                    ),
                ));
            }
        }
        let export = cx.method.unwrap_or(DEFAULT_EXPORT).to_string();
        let callable = module
            .get_export(&export)
            .and_then(|e| e.func().cloned())
            .is_some_and(|f| f.params().len() == 0 && f.results().len() == 0);
        if !callable {
            return Err(LoadError::new(
                ProblemKind::Export,
                if cx.method.is_some() { "method" } else { field },
                format!("the module exports no function `{export}` without parameters and results"),
            ));
        }
        let linker = if imports_wasi {
            add_host_functions(cx.linkers.modules(cx.sandbox.strict).clone(), Mode::Async)
        } else {
            add_host_functions(Linker::new(cx.compiler.engine()), Mode::Sync)
        };
        let pre = linker
            .and_then(|linker| linker.instantiate_pre(&module))
            .map_err(|e| {
                LoadError::new(
                    ProblemKind::Import,
                    field,
                    format!("cannot link its imports: {e:#}"),
                )
            })?;
        Ok(MessageProcessor {
            pre,
            signature: format!("benthos {export}(message) -> message"),
            export,
            sync: !imports_wasi,
        })
    }

    /// The instance's exports, kept in the store; then its `_initialize` or
    /// `_start`.
    fn keep_exports(&self, store: &mut Store<HostState>, instance: &Instance) -> Result<(), Fault> {
        let missing =
            |what: &str| Fault::Wasm(wasmtime::Error::msg(format!("the guest exports no {what}")));
        let process = instance
            .get_typed_func::<(), ()>(&mut *store, &self.export)
            .map_err(Fault::Wasm)?;
        let memory = match instance.get_export(&mut *store, "memory") {
            Some(Extern::Memory(memory)) => memory,
            _ => return Err(missing("memory")),
        };
        let mut func = |name: &str| instance.get_func(&mut *store, name);
        let exports = (
            func("allocate"),
            func("deallocate"),
            func("malloc"),
            func("free"),
        );
        let allocator = match exports {
            (Some(allocate), Some(deallocate), _, _) => Some(Allocator::Rust {
                allocate: allocate.typed(&*store).map_err(Fault::Wasm)?,
                deallocate: deallocate.typed(&*store).map_err(Fault::Wasm)?,
            }),
            (_, _, Some(malloc), Some(free)) => Some(Allocator::C {
                malloc: malloc.typed(&*store).map_err(Fault::Wasm)?,
                free: free.typed(&*store).map_err(Fault::Wasm)?,
            }),
            _ => None,
        };
        let heap_base = match instance.get_export(&mut *store, "__heap_base") {
            Some(Extern::Global(global)) => {
                global.get(&mut *store).i32().map_or(0, |base| base as u32)
            }
            _ => 0,
        };
        store.data_mut().set_abi_state(Processing {
            process,
            memory,
            allocator,
            heap_base,
            message: None,
            error: None,
            inbound: Vec::new(),
        });
        Ok(())
    }

    /// The start function to run once, if the guest has one.
    fn initializer(store: &mut Store<HostState>, instance: &Instance) -> Option<TypedFunc<(), ()>> {
        ["_initialize", "_start"]
            .into_iter()
            .find_map(|name| instance.get_typed_func::<(), ()>(&mut *store, name).ok())
    }

    fn messages(input: Input) -> Result<Vec<Message>, Fault> {
        match input {
            Input::Messages(messages) => Ok(messages),
            other => Err(Fault::WrongInput(format!(
                "is a Benthos message processor (abi: benthos): call it with messages, not {}",
                other.form()
            ))),
        }
    }
}

/// A start function that ends with `proc_exit(0)` ended well.
fn started(outcome: wasmtime::Result<()>) -> Result<(), Fault> {
    match outcome {
        Err(e) if e.downcast_ref::<I32Exit>().is_some_and(|exit| exit.0 == 0) => Ok(()),
        other => other.map_err(Fault::Wasm),
    }
}

impl Prepared for MessageProcessor {
    fn engine(&self) -> &Engine {
        self.pre.module().engine()
    }

    fn signature(&self) -> &str {
        &self.signature
    }

    fn input_form(&self) -> InputForm {
        InputForm::Messages
    }

    fn reuses_instances(&self) -> bool {
        true
    }

    fn is_sync(&self) -> bool {
        self.sync
    }

    fn instantiate<'a>(
        &'a self,
        site: &'a Site,
        store: &'a mut Store<HostState>,
    ) -> Step<'a, Result<(), Fault>> {
        if self.sync {
            return Step::Ready((|| {
                let instance = self.pre.instantiate(&mut *store).map_err(Fault::Wasm)?;
                self.keep_exports(store, &instance)?;
                match Self::initializer(store, &instance) {
                    Some(start) => started(start.call(&mut *store, ())),
                    None => Ok(()),
                }
            })());
        }
        let host = store.data_mut();
        let (stdout, stderr) = host.log_streams();
        let mut builder =
            match site
                .sandbox
                .builder(&[], &Stdin::Bytes(Bytes::new()), stdout, stderr)
            {
                Ok(builder) => builder,
                Err(e) => return Step::Ready(Err(Fault::Sandbox(e))),
            };
        host.set_wasi_p1(&mut builder);
        Step::Pending(Box::pin(async move {
            let instance = self
                .pre
                .instantiate_async(&mut *store)
                .await
                .map_err(Fault::Wasm)?;
            self.keep_exports(store, &instance)?;
            match Self::initializer(store, &instance) {
                Some(start) => started(start.call_async(&mut *store, ()).await),
                None => Ok(()),
            }
        }))
    }

    fn invoke<'a>(
        &'a self,
        _site: &'a Site,
        store: &'a mut Store<HostState>,
        input: Input,
    ) -> Step<'a, Result<Answer, Fault>> {
        let messages = match Self::messages(input) {
            Ok(messages) => messages,
            Err(fault) => return Step::Ready(Err(fault)),
        };
        let mode = if self.sync { Mode::Sync } else { Mode::Async };
        let run = process_all(mode, store, messages);
        if self.sync {
            Step::Ready(ready(run))
        } else {
            Step::Pending(Box::pin(run))
        }
    }
}

/// Each message through the guest's export, in order, on one instance.
async fn process_all(
    mode: Mode,
    store: &mut Store<HostState>,
    messages: Vec<Message>,
) -> Result<Answer, Fault> {
    let process = processing(store.data_mut()).process.clone();
    let mut processed = Vec::with_capacity(messages.len());
    let mut guest_error = false;
    for message in messages {
        let state = processing(store.data_mut());
        state.message = Some(message);
        state.error = None;
        match mode {
            Mode::Sync => process.call(&mut *store, ()),
            Mode::Async => process.call_async(&mut *store, ()).await,
        }
        .map_err(Fault::Wasm)?;
        free_inbound(mode, &mut *store).await.map_err(Fault::Wasm)?;
        let state = processing(store.data_mut());
        let mut message = state
            .message
            .take()
            .expect("the message stays in place while processed");
        if let Some(error) = state.error.take() {
            guest_error = true;
            message.flag(error);
        }
        processed.push(message);
    }
    Ok(Answer {
        output: Output::Messages(processed),
        guest_error,
    })
}

/// The state of a Benthos instance.
fn processing(host: &mut HostState) -> &mut Processing {
    host.abi_state_mut::<Processing>()
        .expect("a Benthos instance keeps its exports")
}

/// Frees what the host allocated for the message just processed.
async fn free_inbound(mode: Mode, store: &mut Store<HostState>) -> wasmtime::Result<()> {
    let state = processing(store.data_mut());
    if state.inbound.is_empty() {
        return Ok(());
    }
    let heap_base = state.heap_base;
    let Some(allocator) = state.allocator.take() else {
        state.inbound.clear();
        return Ok(());
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

/// Gives `region` back to the guest's allocator, unless it lies below the
/// heap: Benthos' own Rust example answers every `allocate` with a
/// dangling pointer (1: its `with_capacity(n).into_boxed_slice()` keeps no
/// capacity), which its allocator must never be handed back.
async fn release(
    mode: Mode,
    mut store: impl wasmtime::AsContextMut<Data = HostState>,
    allocator: &Allocator,
    heap_base: u32,
    region: Region,
) -> wasmtime::Result<()> {
    if region.ptr < heap_base {
        return Ok(());
    }
    match (allocator, mode) {
        (Allocator::Rust { deallocate, .. }, Mode::Sync) => {
            deallocate.call(&mut store, (region.ptr, region.len))
        }
        (Allocator::Rust { deallocate, .. }, Mode::Async) => {
            deallocate
                .call_async(&mut store, (region.ptr, region.len))
                .await
        }
        (Allocator::C { free, .. }, Mode::Sync) => free.call(&mut store, region.ptr),
        (Allocator::C { free, .. }, Mode::Async) => free.call_async(&mut store, region.ptr).await,
    }
}

/// The result of a future that cannot wait: a synchronous store's calls
/// never do.
fn ready<T>(future: impl Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(done) => done,
        Poll::Pending => unreachable!("a synchronous store never waits"),
    }
}

/// `ptr << 32 | len`, as the guest reads an `i64` answer.
fn ptr_len(ptr: u32, len: u32) -> i64 {
    ((u64::from(ptr) << 32) | u64::from(len)) as i64
}

/// Links the host functions under both module names.
fn add_host_functions(
    mut linker: Linker<HostState>,
    mode: Mode,
) -> wasmtime::Result<Linker<HostState>> {
    for module in [BENTHOS_MODULE, BENTO_MODULE] {
        match mode {
            Mode::Sync => {
                linker.func_wrap(
                    module,
                    "v0_msg_as_bytes",
                    |mut caller: Caller<'_, HostState>| {
                        ready(msg_as_bytes(Mode::Sync, &mut caller))
                    },
                )?;
                linker.func_wrap(
                    module,
                    "v0_msg_set_bytes",
                    |mut caller: Caller<'_, HostState>, ptr: u32, len: u32| {
                        ready(msg_set_bytes(Mode::Sync, &mut caller, ptr, len))
                    },
                )?;
                linker.func_wrap(
                    module,
                    "v0_msg_get_meta",
                    |mut caller: Caller<'_, HostState>, ptr: u32, len: u32| {
                        ready(msg_get_meta(Mode::Sync, &mut caller, ptr, len))
                    },
                )?;
                linker.func_wrap(
                    module,
                    "v0_msg_set_meta",
                    |mut caller: Caller<'_, HostState>,
                     key_ptr: u32,
                     key_len: u32,
                     ptr: u32,
                     len: u32| {
                        ready(msg_set_meta(
                            Mode::Sync,
                            &mut caller,
                            (key_ptr, key_len),
                            (ptr, len),
                        ))
                    },
                )?;
            }
            Mode::Async => {
                linker.func_wrap_async(
                    module,
                    "v0_msg_as_bytes",
                    |mut caller: Caller<'_, HostState>, (): ()| {
                        Box::new(async move { msg_as_bytes(Mode::Async, &mut caller).await })
                    },
                )?;
                linker.func_wrap_async(
                    module,
                    "v0_msg_set_bytes",
                    |mut caller: Caller<'_, HostState>, (ptr, len): (u32, u32)| {
                        Box::new(
                            async move { msg_set_bytes(Mode::Async, &mut caller, ptr, len).await },
                        )
                    },
                )?;
                linker.func_wrap_async(
                    module,
                    "v0_msg_get_meta",
                    |mut caller: Caller<'_, HostState>, (ptr, len): (u32, u32)| {
                        Box::new(
                            async move { msg_get_meta(Mode::Async, &mut caller, ptr, len).await },
                        )
                    },
                )?;
                linker.func_wrap_async(
                    module,
                    "v0_msg_set_meta",
                    |mut caller: Caller<'_, HostState>,
                     (key_ptr, key_len, ptr, len): (u32, u32, u32, u32)| {
                        Box::new(async move {
                            msg_set_meta(Mode::Async, &mut caller, (key_ptr, key_len), (ptr, len))
                                .await
                        })
                    },
                )?;
            }
        }
    }
    Ok(linker)
}

/// What a host function failed at: the message is flagged with it, and
/// the guest gets an empty answer.
fn flag(caller: &mut Caller<'_, HostState>, error: String) {
    tracing::debug!(%error, "A Benthos host function failed; the message is flagged.");
    processing(caller.data_mut()).error = Some(error);
}

/// `v0_msg_as_bytes`.
async fn msg_as_bytes(mode: Mode, caller: &mut Caller<'_, HostState>) -> wasmtime::Result<i64> {
    let Some(bytes) = processing(caller.data_mut())
        .message
        .as_ref()
        .map(|m| m.bytes.clone())
    else {
        flag(caller, "attempted to read bytes of deleted message".into());
        return Ok(0);
    };
    Ok(match copy_in(mode, caller, &bytes).await? {
        Ok(ptr) => ptr_len(ptr, bytes.len() as u32),
        Err(error) => {
            flag(
                caller,
                format!("failed to allocate in-bound memory: {error}"),
            );
            0
        }
    })
}

/// `v0_msg_set_bytes`.
async fn msg_set_bytes(
    mode: Mode,
    caller: &mut Caller<'_, HostState>,
    ptr: u32,
    len: u32,
) -> wasmtime::Result<()> {
    match copy_out(mode, caller, ptr, len).await? {
        Ok(bytes) => {
            if let Some(message) = processing(caller.data_mut()).message.as_mut() {
                message.bytes = bytes;
            }
        }
        Err(error) => flag(caller, format!("failed to read out-bound memory: {error}")),
    }
    Ok(())
}

/// `v0_msg_get_meta`.
async fn msg_get_meta(
    mode: Mode,
    caller: &mut Caller<'_, HostState>,
    ptr: u32,
    len: u32,
) -> wasmtime::Result<i64> {
    let key = match copy_out(mode, caller, ptr, len).await? {
        Ok(key) => key,
        Err(error) => {
            flag(
                caller,
                format!("failed to read out-bound meta key memory: {error}"),
            );
            return Ok(0);
        }
    };
    let value = processing(caller.data_mut())
        .message
        .as_ref()
        .and_then(|m| m.metadata.get(&*String::from_utf8_lossy(&key)).cloned())
        .unwrap_or_default();
    Ok(match copy_in(mode, caller, value.as_bytes()).await? {
        Ok(ptr) => ptr_len(ptr, value.len() as u32),
        Err(error) => {
            flag(
                caller,
                format!("failed to allocate in-bound memory: {error}"),
            );
            0
        }
    })
}

/// `v0_msg_set_meta`.
async fn msg_set_meta(
    mode: Mode,
    caller: &mut Caller<'_, HostState>,
    (key_ptr, key_len): (u32, u32),
    (ptr, len): (u32, u32),
) -> wasmtime::Result<()> {
    let key = match copy_out(mode, caller, key_ptr, key_len).await? {
        Ok(key) => key,
        Err(error) => {
            flag(
                caller,
                format!("failed to read out-bound meta key memory: {error}"),
            );
            return Ok(());
        }
    };
    let value = match copy_out(mode, caller, ptr, len).await? {
        Ok(value) => value,
        Err(error) => {
            flag(
                caller,
                format!("failed to read out-bound meta value memory: {error}"),
            );
            return Ok(());
        }
    };
    if let Some(message) = processing(caller.data_mut()).message.as_mut() {
        message.metadata.insert(
            String::from_utf8_lossy(&key).into_owned(),
            String::from_utf8_lossy(&value).into_owned(),
        );
    }
    Ok(())
}

/// Copies `bytes` into a buffer from the guest's allocator, remembered to
/// be freed after the message; its address, or why there is none. A trap
/// in the allocator is an error.
async fn copy_in(
    mode: Mode,
    caller: &mut Caller<'_, HostState>,
    bytes: &[u8],
) -> wasmtime::Result<Result<u32, String>> {
    let state = processing(caller.data_mut());
    let memory = state.memory;
    let Some(allocator) = state.allocator.take() else {
        return Ok(Err(
            "the guest exports neither allocate/deallocate nor malloc/free".into(),
        ));
    };
    let len = bytes.len() as u32;
    let allocated = match (&allocator, mode) {
        (Allocator::Rust { allocate, .. }, Mode::Sync) => allocate.call(&mut *caller, len),
        (Allocator::Rust { allocate, .. }, Mode::Async) => {
            allocate.call_async(&mut *caller, len).await
        }
        (Allocator::C { malloc, .. }, Mode::Sync) => malloc.call(&mut *caller, len),
        (Allocator::C { malloc, .. }, Mode::Async) => malloc.call_async(&mut *caller, len).await,
    };
    processing(caller.data_mut()).allocator = Some(allocator);
    let ptr = allocated?;
    let start = ptr as usize;
    match memory
        .data_mut(&mut *caller)
        .get_mut(start..start + bytes.len())
    {
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

/// Copies a buffer the guest handed over out of its memory; in the
/// `allocate` style, then gives it back with `deallocate` (once: a buffer
/// the host allocated is taken off the list of those to free).
async fn copy_out(
    mode: Mode,
    caller: &mut Caller<'_, HostState>,
    ptr: u32,
    len: u32,
) -> wasmtime::Result<Result<Bytes, String>> {
    let state = processing(caller.data_mut());
    let (memory, heap_base) = (state.memory, state.heap_base);
    let (start, end) = (ptr as usize, ptr as usize + len as usize);
    let Some(bytes) = memory
        .data(&*caller)
        .get(start..end)
        .map(Bytes::copy_from_slice)
    else {
        return Ok(Err(format!(
            "prevented read of {len} bytes at {ptr:#x}, outside memory"
        )));
    };
    let state = processing(caller.data_mut());
    if !matches!(state.allocator, Some(Allocator::Rust { .. })) {
        return Ok(Ok(bytes));
    }
    let region = match state.inbound.iter().position(|region| region.ptr == ptr) {
        // Given back with the size it was allocated with.
        Some(at) => state.inbound.swap_remove(at),
        None => Region { ptr, len },
    };
    let allocator = state.allocator.take().expect("matched above");
    let released = release(mode, &mut *caller, &allocator, heap_base, region).await;
    processing(caller.data_mut()).allocator = Some(allocator);
    released.map(|()| Ok(bytes))
}
