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
//!   `get_meta`) is given back with `deallocate(ptr, len)` once copied,
//!   and at most once: Benthos' Rust example forgets its output and
//!   relies on it;
//! * in the `malloc` style the guest's buffers stay the guest's: TinyGo
//!   hands over slices of its own heap, which `free` would refuse;
//! * the copies the host made for a message are freed after `process`
//!   returns (Benthos frees them only in the `malloc` style, so a long
//!   stream grows a Rust guest's memory without bound), when the guest
//!   exports a free function and a probe at instantiation showed its
//!   allocator hands out distinct buffers (Benthos' own Rust example
//!   answers 1 for every size); a copy the guest handed back (an in-place
//!   guest, or a slice of it) is given back whole, once;
//! * nothing below the guest's `__heap_base` (when it exports it) is ever
//!   given to its allocator: it is not heap memory.
//!
//! Each message of a batch gets the function's whole `max_execution_ms`.
//!
//! A host function that cannot do its work (a pointer outside memory, no
//! allocator) flags the message with the error and processing goes on, as
//! in Benthos; a trap (or the time or memory limit) fails the message as
//! it stands, and the messages after it go on in a fresh instance, so each
//! message is processed once.
//!
//! A guest that imports nothing from WASI (`wasm32-unknown-unknown`, as
//! Benthos' Rust example is built) runs synchronously on the caller's
//! thread; one that imports WASI runs on a fiber.

mod guest;
mod host;

use wasmtime::{Engine, Extern, Instance, InstancePre, Linker, Module, Store};

use self::guest::{Allocator, Free, Processing, free_inbound, probe, processing};
use self::host::add_host_functions;
use super::core_module::{
    Mode, check_i32_exports, compile, describe_failure, instantiate, passes_over, ready,
    replace_instance, step,
};
use super::{Abi, Answer, Fault, LoadContext, LoadError, Prepared, Site, Step};
use crate::call::{Input, InputForm, Output};
use crate::error::ProblemKind;
use crate::host::HostState;
use crate::limits::DeadlineReached;
use crate::message::Message;

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

impl MessageProcessor {
    fn load(cx: &LoadContext<'_>, bytes: &[u8]) -> Result<Self, LoadError> {
        let field = cx.source_field;
        let module = compile(cx, bytes, "a Benthos guest")?;
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
        check_allocator(&module).map_err(|m| LoadError::new(ProblemKind::Export, field, m))?;
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
        // The signatures were checked at load (`check_allocator`).
        let typed = |e: wasmtime::Error| Fault::Wasm(e);
        let allocator = match exports {
            (Some(allocate), deallocate, _, _) => Some(Allocator {
                alloc: allocate.typed(&*store).map_err(typed)?,
                free: match deallocate {
                    Some(f) => Some(Free::Deallocate(f.typed(&*store).map_err(typed)?)),
                    None => None,
                },
                frees_copies: false,
            }),
            (None, _, Some(malloc), free) => Some(Allocator {
                alloc: malloc.typed(&*store).map_err(typed)?,
                free: match free {
                    Some(f) => Some(Free::Free(f.typed(&*store).map_err(typed)?)),
                    None => None,
                },
                frees_copies: false,
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
            given_back: Vec::new(),
            failed: false,
        });
        Ok(())
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

/// The allocator exports the host will call, checked against the
/// signatures it calls them with, so that a mismatch is a load problem rather
/// than a failure of every instance.
fn check_allocator(module: &Module) -> Result<(), String> {
    // (name, i32 parameters, i32 results)
    let expected: [(&str, usize, usize); 4] = [
        ("allocate", 1, 1),
        ("deallocate", 2, 0),
        ("malloc", 1, 1),
        ("free", 1, 0),
    ];
    // Only the style the host will use (`allocate` wins, as in Benthos).
    let used: [&str; 2] = if module.get_export("allocate").is_some() {
        ["allocate", "deallocate"]
    } else {
        ["malloc", "free"]
    };
    let used: Vec<_> = expected
        .into_iter()
        .filter(|(name, _, _)| used.contains(name))
        .collect();
    check_i32_exports(module, &used)
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
        let keep =
            |store: &mut Store<HostState>, instance: &Instance| self.keep_exports(store, instance);
        instantiate(&self.pre, self.sync, site, store, keep, probe)
    }

    fn invoke<'a>(
        &'a self,
        site: &'a Site,
        store: &'a mut Store<HostState>,
        input: Input,
    ) -> Step<'a, Result<Answer, Fault>> {
        let messages = match Self::messages(input) {
            Ok(messages) => messages,
            Err(fault) => return Step::Ready(Err(fault)),
        };
        let mode = if self.sync { Mode::Sync } else { Mode::Async };
        step(self.sync, self.process_all(mode, site, store, messages))
    }
}

impl MessageProcessor {
    /// Each message through the guest's export, in order.
    ///
    /// Each message gets the function's whole `max_execution_ms` (within
    /// the caller's deadline), as each is its own call in Benthos. A
    /// message the guest fails on (a trap, its time or memory limit) is
    /// flagged as it stands, and the messages after it go on in a fresh
    /// instance: each message is processed once.
    async fn process_all(
        &self,
        mode: Mode,
        site: &Site,
        store: &mut Store<HostState>,
        messages: Vec<Message>,
    ) -> Result<Answer, Fault> {
        let mut processed = Vec::with_capacity(messages.len());
        let mut guest_error = false;
        // Cloned once per instance: cloning a `TypedFunc` clones its
        // registered type.
        let mut process = None;
        for (i, message) in messages.into_iter().enumerate() {
            if i > 0 {
                store.data_mut().renew_deadline(&site.limits);
                store.set_epoch_deadline(1);
            }
            if processing(store.data_mut()).failed {
                self.restart(site, store).await?;
                process = None;
            }
            let process =
                process.get_or_insert_with(|| processing(store.data_mut()).process.clone());
            let state = processing(store.data_mut());
            state.message = Some(message);
            state.error = None;
            let outcome = match mode {
                Mode::Sync => process
                    .call(&mut *store, ())
                    .and_then(|()| ready(free_inbound(mode, &mut *store))),
                // The epoch stops a busy guest at the message's deadline;
                // this timer stops one waiting in a host call (a sleep).
                Mode::Async => {
                    let deadline = store.data().deadline();
                    let call = async {
                        process.call_async(&mut *store, ()).await?;
                        free_inbound(mode, &mut *store).await
                    };
                    tokio::time::timeout_at(deadline.into(), call)
                        .await
                        .unwrap_or_else(|_| Err(DeadlineReached.into()))
                }
            };
            let failure = match outcome {
                Ok(()) => None,
                Err(failure) if passes_over(&failure, store) => Some(describe_failure(
                    "the processor",
                    "message",
                    &failure,
                    store,
                    &site.limits,
                )),
                Err(fatal) => return Err(Fault::Wasm(fatal)),
            };
            let state = processing(store.data_mut());
            let mut message = state
                .message
                .take()
                .expect("the message stays in place while processed");
            let error = match (state.error.take(), failure) {
                (_, Some(failure)) => {
                    state.failed = true;
                    Some(failure)
                }
                (error, None) => error,
            };
            if let Some(error) = error {
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

    /// A fresh instance in place of one that failed on a message.
    async fn restart(&self, site: &Site, store: &mut Store<HostState>) -> Result<(), Fault> {
        let keep =
            |store: &mut Store<HostState>, instance: &Instance| self.keep_exports(store, instance);
        replace_instance(&self.pre, self.sync, site, store, keep, probe).await
    }
}
