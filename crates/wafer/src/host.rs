//! The state every store carries: the guest's WASI context (preview 2, or
//! preview 1 for core WASI programs), its resource table, the guest's log
//! streams or a program's captured output, its memory cap and the current
//! call's deadline.
//!
//! Linking is not granting: the WASI interfaces toolchains import are always
//! linked, but the context has no env, no args, no files and no network
//! unless the function's [`crate::wasi::Sandbox`] grants them. A typed
//! function with an empty sandbox gets its context only when the guest
//! first touches WASI.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::guest_log::GuestLog;
use crate::limits::{Limits, MemoryCap, on_epoch_tick};
use crate::wasi::output::{Output, Written};

/// The epoch tick at which a synchronous call that is still running hands
/// its Tokio worker over ([`crate::blocking::hand_off_worker`]): the
/// second, so the call has run at least one full tick.
const HAND_OFF_AT_TICK: u32 = 2;

/// Store data for one instance.
pub(crate) struct HostState {
    table: ResourceTable,
    wasi: Option<WasiCtx>,
    p1: Option<WasiP1Ctx>,
    stdout: GuestLog,
    stderr: GuestLog,
    /// A program's stdout and stderr, captured for its answer.
    captured: Option<Output>,
    /// When the running call must stop; read by the epoch callback.
    deadline: Instant,
    /// Epoch ticks the running call has seen, while it still holds an
    /// async worker.
    ticks_on_worker: u32,
    /// Set when the engine is interrupted; read by the epoch callback.
    pub interrupted: Arc<AtomicBool>,
    /// The instance's linear memory cap.
    pub memory: MemoryCap,
}

impl HostState {
    /// A state for an instance of `function`.
    pub fn new(function: Arc<str>, interrupted: Arc<AtomicBool>, limits: &Limits) -> Self {
        HostState {
            table: ResourceTable::new(),
            wasi: None,
            p1: None,
            stdout: GuestLog::new(function.clone(), "stdout"),
            stderr: GuestLog::new(function, "stderr"),
            captured: None,
            deadline: Instant::now() + limits.max_execution,
            ticks_on_worker: 0,
            interrupted,
            memory: MemoryCap::new(limits.max_memory_bytes),
        }
    }

    /// A store for one instance: memory capped, deadline checked at every
    /// epoch tick. An async call (`may_yield`) yields to the executor at
    /// each tick; a synchronous one that is still running at its second
    /// tick hands its async worker over and runs on as a blocking thread.
    pub fn into_store(self, engine: &Engine, may_yield: bool) -> Store<HostState> {
        let mut store = Store::new(engine, self);
        store.limiter(|host| &mut host.memory);
        store.epoch_deadline_callback(move |mut store| {
            let host = store.data_mut();
            let update = on_epoch_tick(host.deadline, host.is_interrupted(), may_yield)?;
            if !may_yield && host.ticks_on_worker < HAND_OFF_AT_TICK {
                host.ticks_on_worker += 1;
                if host.ticks_on_worker == HAND_OFF_AT_TICK && !crate::blocking::hand_off_worker() {
                    // Not handed over yet: try again at the next tick.
                    host.ticks_on_worker -= 1;
                }
            }
            Ok(update)
        });
        store.set_epoch_deadline(1);
        store
    }

    /// Starts a call that must end by `deadline`.
    pub fn begin_call(&mut self, deadline: Instant) {
        self.deadline = deadline;
        self.ticks_on_worker = 0;
    }

    /// Keeps a program's captured output with the store, so that the call
    /// path finds it however the run ends.
    pub fn capture(&mut self, output: Output) {
        self.captured = Some(output);
    }

    /// What the program wrote so far, if its output is captured.
    pub fn take_written(&mut self) -> Option<Written> {
        self.captured.as_ref().map(Output::take)
    }

    /// The guest's resource table.
    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// The guest's stdout and stderr logs, for a context built ahead.
    pub fn log_streams(&self) -> (GuestLog, GuestLog) {
        (self.stdout.clone(), self.stderr.clone())
    }

    /// Gives the guest this preview 2 context instead of an empty one.
    pub fn set_wasi(&mut self, builder: &mut WasiCtxBuilder) {
        self.wasi = Some(builder.build());
    }

    /// Gives a preview 1 program this context.
    pub fn set_wasi_p1(&mut self, builder: &mut WasiCtxBuilder) {
        self.p1 = Some(builder.build_p1());
    }

    /// The preview 1 context; an empty one if none was set.
    pub fn wasi_p1(&mut self) -> &mut WasiP1Ctx {
        self.p1
            .get_or_insert_with(|| WasiCtxBuilder::new().build_p1())
    }

    /// Whether the engine was interrupted.
    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed)
    }

    /// Logs the rest of the call's output.
    pub fn end_call(&self) {
        self.stdout.end_call();
        self.stderr.end_call();
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let (stdout, stderr) = (&self.stdout, &self.stderr);
        // Built on first use: seeding its random generators is a large share
        // of instantiation, and most typed functions never touch WASI.
        let ctx = self.wasi.get_or_insert_with(|| {
            WasiCtxBuilder::new()
                .stdout(stdout.clone())
                .stderr(stderr.clone())
                .build()
        });
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}
