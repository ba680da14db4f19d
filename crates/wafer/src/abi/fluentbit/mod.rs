//! `abi: fluentbit`, Fluent Bit's `wasm` filter: a core module called once
//! per record with the record in its memory, answering the new record.
//!
//! Guest contract, as Fluent Bit's `plugins/filter_wasm` and
//! `src/wasm/flb_wasm.c` define it:
//!
//! * the export named by `method` (Fluent Bit's `function_name`):
//!   `fn(tag_ptr, tag_len, time_sec: u32, time_nsec: u32, record_ptr,
//!   record_len) -> ptr`;
//! * the tag is copied into guest memory NUL-terminated (`tag_len` leaves
//!   the NUL out); the record is a NUL-terminated JSON object
//!   (`event_format: json`) or a msgpack map without a NUL
//!   (`event_format: msgpack`);
//! * the copies go through the guest's own `malloc(len) -> ptr` and are
//!   given back with `free(ptr)` after the call when it exports them (as
//!   WAMR does: a TinyGo heap owns the end of memory, and pages grown
//!   behind its back would be overwritten); otherwise into pages the host
//!   grows for its own use (Fluent Bit's Rust examples export no
//!   allocator, and their `dlmalloc` never takes pages it did not grow);
//! * the answer is a pointer: NULL, or an empty string in json mode, drops
//!   the record; in json mode the first complete JSON value there replaces
//!   the record if it is an object, read bounded by memory (Fluent Bit's
//!   Rust example answers a pointer into a buffer it already freed, with
//!   no NUL after the JSON); in msgpack mode exactly one msgpack value is
//!   decoded, so records holding zero bytes survive (Fluent Bit measures
//!   the answer with `strlen` and truncates them: its issues #9967,
//!   #9976). The new record keeps the old one's time and metadata;
//! * optionally `_initialize` or `_start`, run once per instance; WASI
//!   preview 1 is linked with the sandbox's grants (Fluent Bit's
//!   `accessible_paths`).
//!
//! Records travel as [`Message`]s whose bytes are a JSON object, whose
//! `timestamp` is the event time and whose metadata `tag` is the tag.
//!
//! An answer that is not a JSON object, or a pointer outside memory,
//! flags the record (Fluent Bit logs and drops it). So does a trap, the
//! time or memory limit: the records after it go on in a fresh instance,
//! each record filtered once. Each record of a batch gets the function's whole
//! `max_execution_ms`.

mod records;

use wasmtime::{Engine, Extern, Instance, InstancePre, Linker, Memory, Store, TypedFunc};

use self::records::{Answer as RecordAnswer, read_answer, record_for_guest};
use super::core_module::{
    Mode, call, check_i32_exports, compile, describe_failure, instantiate, passes_over,
    replace_instance, step,
};
use super::{Abi, Answer, Fault, LoadContext, LoadError, Prepared, Site, Step};
use crate::call::{Input, InputForm, Output};
use crate::error::ProblemKind;
use crate::host::HostState;
use crate::limits::DeadlineReached;
use crate::message::{Message, TAG_METADATA};
use crate::registry::EventFormat;

/// The preview 1 import module.
const WASI_P1: &str = "wasi_snapshot_preview1";

/// `abi: fluentbit`.
pub(crate) struct Fluentbit;

impl Abi for Fluentbit {
    fn load(&self, cx: &LoadContext<'_>, module: &[u8]) -> Result<Box<dyn Prepared>, LoadError> {
        Ok(Box::new(RecordFilter::load(cx, module)?))
    }
}

/// A Fluent Bit filter, compiled and pre-linked.
struct RecordFilter {
    pre: InstancePre<HostState>,
    export: String,
    format: EventFormat,
    signature: String,
    /// No WASI imports: instantiate and call without a fiber.
    sync: bool,
}

/// What one instance keeps.
struct Filtering {
    /// Lent out for each batch (cloning a `TypedFunc` clones its
    /// registered type, a cost every record would pay); `None` once the
    /// instance failed on a record, until it is replaced.
    funcs: Option<Funcs>,
    memory: Memory,
    /// The pages the host grew for its copies (guests without an
    /// allocator): offset and length.
    scratch: (u64, u64),
}

/// The guest functions the host calls.
struct Funcs {
    filter: TypedFunc<(u32, u32, u32, u32, u32, u32), u32>,
    /// `malloc` and `free`, when the guest exports both.
    allocator: Option<(TypedFunc<u32, u32>, TypedFunc<u32, ()>)>,
}

impl RecordFilter {
    fn load(cx: &LoadContext<'_>, bytes: &[u8]) -> Result<Self, LoadError> {
        let field = cx.source_field;
        let module = compile(cx, bytes, "a Fluent Bit filter")?;
        let mut imports_wasi = false;
        for import in module.imports() {
            if import.module() != WASI_P1 {
                return Err(LoadError::new(
                    ProblemKind::Import,
                    field,
                    format!(
                        "imports {}::{}, which wafer does not provide (a Fluent Bit filter imports {WASI_P1} only)",
                        import.module(),
                        import.name(),
                    ),
                ));
            }
            imports_wasi = true;
        }
        let method_field = if cx.method.is_some() { "method" } else { field };
        let Some(export) = cx.method else {
            return Err(LoadError::new(
                ProblemKind::MissingField,
                "method",
                "a Fluent Bit filter needs the export to call (Fluent Bit's `function_name`)",
            ));
        };
        if module
            .get_export(export)
            .and_then(|e| e.func().cloned())
            .is_none()
        {
            return Err(LoadError::new(
                ProblemKind::Export,
                method_field,
                format!("the module exports no function `{export}`"),
            ));
        }
        check_i32_exports(&module, &[(export, 6, 1), ("malloc", 1, 1), ("free", 1, 0)])
            .map_err(|m| LoadError::new(ProblemKind::Export, method_field, m))?;
        let memory = module
            .get_export("memory")
            .and_then(|e| e.memory().cloned());
        if !memory.is_some_and(|m| !m.is_shared() && !m.is_64()) {
            return Err(LoadError::new(
                ProblemKind::Export,
                field,
                "a Fluent Bit filter exports its memory as `memory` (32-bit, not shared): the host copies records into it",
            ));
        }
        let linker = if imports_wasi {
            cx.linkers.modules(cx.sandbox.strict).clone()
        } else {
            Linker::new(cx.compiler.engine())
        };
        let pre = linker.instantiate_pre(&module).map_err(|e| {
            LoadError::new(
                ProblemKind::Import,
                field,
                format!("cannot link its imports: {e:#}"),
            )
        })?;
        let format = match cx.event_format {
            EventFormat::Json => "json",
            EventFormat::Msgpack => "msgpack",
        };
        Ok(RecordFilter {
            pre,
            signature: format!("fluentbit {export}(tag, time, record: {format}) -> record"),
            export: export.to_string(),
            format: cx.event_format,
            sync: !imports_wasi,
        })
    }

    fn keep_exports(&self, store: &mut Store<HostState>, instance: &Instance) -> Result<(), Fault> {
        let filter = instance
            .get_typed_func(&mut *store, &self.export)
            .map_err(Fault::Wasm)?;
        let memory = match instance.get_export(&mut *store, "memory") {
            Some(Extern::Memory(memory)) => memory,
            _ => {
                return Err(Fault::Wasm(wasmtime::Error::msg(
                    "the guest exports no memory",
                )));
            }
        };
        let malloc = instance.get_typed_func(&mut *store, "malloc").ok();
        let free = instance.get_typed_func(&mut *store, "free").ok();
        store.data_mut().set_abi_state(Filtering {
            funcs: Some(Funcs {
                filter,
                allocator: malloc.zip(free),
            }),
            memory,
            scratch: (0, 0),
        });
        Ok(())
    }
}

impl Prepared for RecordFilter {
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
        instantiate(&self.pre, self.sync, site, store, keep, |_, _| {
            std::future::ready(Ok(()))
        })
    }

    fn invoke<'a>(
        &'a self,
        site: &'a Site,
        store: &'a mut Store<HostState>,
        input: Input,
    ) -> Step<'a, Result<Answer, Fault>> {
        let records = match input {
            Input::Messages(records) => records,
            other => {
                return Step::Ready(Err(Fault::WrongInput(format!(
                    "is a Fluent Bit filter (abi: fluentbit): call it with records, not {}",
                    other.form()
                ))));
            }
        };
        let mode = if self.sync { Mode::Sync } else { Mode::Async };
        step(self.sync, self.filter_all(mode, site, store, records))
    }
}

fn filtering(host: &mut HostState) -> &mut Filtering {
    host.abi_state_mut::<Filtering>()
        .expect("a Fluent Bit instance keeps its exports")
}

impl RecordFilter {
    /// Each record through the filter, in order: the records it kept
    /// (rewritten), flagged where it failed.
    ///
    /// A record the guest fails on (a trap, its time limit, its memory
    /// limit, an exit) is flagged, and the records after it go on in a
    /// fresh instance in a fresh store, which replaces this one: so each
    /// record is filtered once, as in Fluent Bit, and the next record gets
    /// a fresh instance, as Fluent Bit's persistent one does not.
    async fn filter_all(
        &self,
        mode: Mode,
        site: &Site,
        store: &mut Store<HostState>,
        records: Vec<Message>,
    ) -> Result<Answer, Fault> {
        // None after a record failed: its instance is replaced before the
        // next record (of this call or the next) needs one.
        let mut funcs = filtering(store.data_mut()).funcs.take();
        let mut kept = Vec::with_capacity(records.len());
        let mut guest_error = false;
        for (i, mut record) in records.into_iter().enumerate() {
            // Fluent Bit never hands a filter a record an earlier one
            // failed on: it is already gone there.
            if record.error.is_some() {
                kept.push(record);
                continue;
            }
            if i > 0 {
                store.data_mut().renew_deadline(&site.limits);
                store.set_epoch_deadline(1);
            }
            // Started only when a record needs it: a failure on the last
            // record costs nothing more.
            let current = match funcs.take() {
                Some(current) => current,
                None => {
                    self.restart(site, store).await?;
                    filtering(store.data_mut())
                        .funcs
                        .take()
                        .expect("a fresh instance keeps its functions")
                }
            };
            let filtered = match mode {
                Mode::Sync => filter_one(mode, self.format, &current, store, &record).await,
                // The epoch stops a busy guest at the record's deadline;
                // this timer stops one waiting in a host call (a sleep).
                Mode::Async => {
                    let deadline = store.data().deadline();
                    tokio::time::timeout_at(
                        deadline.into(),
                        filter_one(mode, self.format, &current, store, &record),
                    )
                    .await
                    .unwrap_or_else(|_| Err(DeadlineReached.into()))
                }
            };
            let filtered = match filtered {
                Ok(filtered) => {
                    funcs = Some(current);
                    filtered
                }
                Err(failure) if passes_over(&failure, store) => Err(describe_failure(
                    "the filter",
                    "record",
                    &failure,
                    store,
                    &site.limits,
                )),
                Err(fatal) => return Err(Fault::Wasm(fatal)),
            };
            match filtered {
                Ok(RecordAnswer::Keep(bytes)) => {
                    record.bytes = bytes;
                    kept.push(record);
                }
                Ok(RecordAnswer::Drop) => {}
                Err(problem) => {
                    guest_error = true;
                    record.flag(problem);
                    kept.push(record);
                }
            }
        }
        filtering(store.data_mut()).funcs = funcs;
        Ok(Answer {
            output: Output::Messages(kept),
            guest_error,
        })
    }

    /// A fresh instance in place of one that failed on a record.
    async fn restart(&self, site: &Site, store: &mut Store<HostState>) -> Result<(), Fault> {
        let keep =
            |store: &mut Store<HostState>, instance: &Instance| self.keep_exports(store, instance);
        replace_instance(&self.pre, self.sync, site, store, keep, |_, _| {
            std::future::ready(Ok(()))
        })
        .await
    }
}

/// One record through the filter: a trap is the outer error, a record the
/// guest or the host could not handle the inner one.
async fn filter_one(
    mode: Mode,
    format: EventFormat,
    funcs: &Funcs,
    store: &mut Store<HostState>,
    record: &Message,
) -> wasmtime::Result<Result<RecordAnswer, String>> {
    let body = match record_for_guest(format, &record.bytes) {
        Ok(body) => body,
        Err(problem) => return Ok(Err(problem)),
    };
    let tag = record.metadata.get(TAG_METADATA).map_or("", String::as_str);
    let (sec, nsec) = match record.timestamp.duration_since(std::time::UNIX_EPOCH) {
        Ok(since) => (since.as_secs() as u32, since.subsec_nanos()),
        Err(_) => (0, 0),
    };
    // The tag and (in json mode) the record are NUL-terminated.
    let tag_size = tag.len() as u64 + 1;
    let record_size = body.len() as u64 + u64::from(format == EventFormat::Json);
    let (Ok(tag_len), Ok(record_len)) = (u32::try_from(tag_size), u32::try_from(record_size))
    else {
        return Ok(Err(
            "the record is too large for 32-bit guest memory".to_string()
        ));
    };
    let (tag_ptr, record_ptr) = match &funcs.allocator {
        Some((malloc, free)) => {
            let tag_ptr = call(mode, &mut *store, malloc, tag_len).await?;
            let record_ptr = call(mode, &mut *store, malloc, record_len).await?;
            if tag_ptr == 0 || record_ptr == 0 {
                for ptr in [tag_ptr, record_ptr].into_iter().filter(|&p| p != 0) {
                    call(mode, &mut *store, free, ptr).await?;
                }
                return Ok(Err("the guest's malloc answered NULL".to_string()));
            }
            (u64::from(tag_ptr), u64::from(record_ptr))
        }
        None => match scratch(store, tag_size + record_size) {
            Ok(at) => (at, at + tag_size),
            Err(problem) => return Ok(Err(problem)),
        },
    };
    let memory = filtering(store.data_mut()).memory;
    let json = format == EventFormat::Json;
    let copied = write(&memory, &mut *store, tag_ptr, tag.as_bytes(), true)
        .and_then(|()| write(&memory, &mut *store, record_ptr, &body, json));
    if let Err(problem) = copied {
        if let Some((_, free)) = &funcs.allocator {
            call(mode, &mut *store, free, tag_ptr as u32).await?;
            call(mode, &mut *store, free, record_ptr as u32).await?;
        }
        return Ok(Err(problem));
    }
    let params = (
        tag_ptr as u32,
        tag.len() as u32,
        sec,
        nsec,
        record_ptr as u32,
        body.len() as u32,
    );
    let answer_ptr = call(mode, &mut *store, &funcs.filter, params).await?;
    let answer = read_answer(format, memory.data(&*store), answer_ptr);
    if let Some((_, free)) = &funcs.allocator {
        call(mode, &mut *store, free, tag_ptr as u32).await?;
        call(mode, &mut *store, free, record_ptr as u32).await?;
    }
    Ok(answer)
}

/// `bytes` (then a NUL, if `nul`) at `at` in guest memory.
fn write(
    memory: &Memory,
    store: &mut Store<HostState>,
    at: u64,
    bytes: &[u8],
    nul: bool,
) -> Result<(), String> {
    let data = memory.data_mut(store);
    let size = bytes.len() + usize::from(nul);
    let start = usize::try_from(at).unwrap_or(usize::MAX);
    let Some(place) = start
        .checked_add(size)
        .and_then(|end| data.get_mut(start..end))
    else {
        return Err(format!(
            "the guest's malloc answered {at:#x}, and {size} bytes from there are outside its memory"
        ));
    };
    place[..bytes.len()].copy_from_slice(bytes);
    if nul {
        place[bytes.len()] = 0;
    }
    Ok(())
}

/// Room for `size` bytes in pages the host grew for its own use, reused
/// from record to record and grown when a record needs more.
///
/// Pages are added at the end of memory: when the region is still there
/// it grows by what is missing; when the guest grew memory after it, a
/// new region is taken, twice the old one at least, so that growing
/// records do not leave a trail of small ones behind.
fn scratch(store: &mut Store<HostState>, size: u64) -> Result<u64, String> {
    let state = filtering(store.data_mut());
    let (offset, len) = state.scratch;
    if size <= len {
        return Ok(offset);
    }
    let memory = state.memory;
    let page = memory.page_size(&*store);
    let end = memory.data_size(&*store) as u64;
    let at_end = len > 0 && offset + len == end;
    let (start, wanted) = if at_end {
        (offset, size - len)
    } else {
        (end, size.max(2 * len))
    };
    let pages = wanted.div_ceil(page);
    if let Err(e) = memory.grow(&mut *store, pages) {
        // The refusal is this record's, not a reason to call a later trap
        // of the batch a memory limit.
        store.data_mut().memory.reset();
        return Err(format!(
            "no room in guest memory for a {size}-byte record: {e}"
        ));
    }
    let grown = memory.data_size(&*store) as u64;
    filtering(store.data_mut()).scratch = (start, grown - start);
    Ok(start)
}
