//! The state every store carries: the guest's WASI context (preview 2, or
//! preview 1 for core WASI programs), its resource table, the guest's log
//! streams or a program's captured output, its memory cap, the current
//! call's deadline, and the state its ABI keeps of the instance.
//!
//! Linking is not granting: the WASI interfaces toolchains import are always
//! linked, but the context has no env, no args, no files and no network
//! unless the function's [`crate::wasi::Sandbox`] grants them. A typed
//! function with an empty sandbox gets its context only when the guest
//! first touches WASI.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::abi::Site;
use crate::abi::wasi_http::preview2023::Http2023;
use crate::blocking::HandOff;
use crate::engine::Interrupt;
use crate::guest_log::GuestLog;
use crate::limits::{Limits, MemoryCap, on_epoch_tick};
use crate::wasi::outbound_http::{OutboundGuard, OutboundHooks};
use crate::wasi::output::{Output, Written};

/// Store data for one instance.
pub(crate) struct HostState {
    table: ResourceTable,
    // Boxed: both contexts are large, and a store moves its data around.
    wasi: Option<Box<WasiCtx>>,
    p1: Option<Box<WasiP1Ctx>>,
    /// wasi:http's context, made when the guest first uses wasi:http.
    http: Option<Box<(WasiHttpCtx, OutboundHooks)>>,
    /// What the function's outbound requests are checked against.
    outbound: Arc<OutboundGuard>,
    /// The resources of the 2023 wasi-http preview's calls, made when the
    /// guest first uses them.
    http_2023: Option<Box<Http2023>>,
    stdout: GuestLog,
    stderr: GuestLog,
    /// A program's stdout and stderr, captured for its answer.
    captured: Option<Output>,
    /// What the instance's ABI keeps of it (see [`crate::abi`]).
    abi: Option<Box<dyn Any + Send>>,
    /// When the running call must stop; read by the epoch callback.
    deadline: Instant,
    /// Whether `deadline` is the caller's, not the function's limit.
    deadline_by_caller: bool,
    /// The caller's own deadline, if it gave one.
    caller_deadline: Option<Instant>,
    /// How far the running call, if synchronous, is in handing its async
    /// worker over.
    hand_off: HandOff,
    /// The engine's interrupt, read by the epoch callback.
    pub interrupted: Interrupt,
    /// The instance's linear memory cap.
    pub memory: MemoryCap,
}

impl HostState {
    /// A state for an instance of the function `site` describes.
    pub fn new(site: &Site) -> Self {
        let limits = &site.limits;
        HostState {
            table: ResourceTable::new(),
            wasi: None,
            p1: None,
            http: None,
            outbound: site.outbound.clone(),
            http_2023: None,
            stdout: GuestLog::new(site.id.clone(), "stdout"),
            stderr: GuestLog::new(site.id.clone(), "stderr"),
            captured: None,
            abi: None,
            deadline: limits.deadline(Instant::now()),
            deadline_by_caller: false,
            caller_deadline: None,
            hand_off: HandOff::new(),
            interrupted: site.interrupted.clone(),
            memory: MemoryCap::new(limits.max_memory_bytes),
        }
    }

    /// A store for one instance: memory capped, deadline checked at every
    /// epoch tick. An async call (`may_yield`) yields to the executor at
    /// each tick; a synchronous one that outlives a tick hands its async
    /// worker over and runs on as a blocking thread ([`HandOff`]).
    pub fn into_store(self, engine: &Engine, may_yield: bool) -> Store<HostState> {
        let mut store = Store::new(engine, self);
        store.limiter(|host| &mut host.memory);
        store.epoch_deadline_callback(move |mut store| {
            let host = store.data_mut();
            let update = on_epoch_tick(host.deadline, host.is_interrupted(), may_yield)?;
            if !may_yield {
                host.hand_off.on_tick();
            }
            Ok(update)
        });
        store.set_epoch_deadline(1);
        store
    }

    /// Keeps what the instance's ABI needs of it, for its invocations and
    /// its host functions.
    pub fn set_abi_state<T: Any + Send>(&mut self, state: T) {
        self.abi = Some(Box::new(state));
    }

    /// The instance's ABI state, if it is a `T`.
    pub fn abi_state<T: Any>(&self) -> Option<&T> {
        self.abi.as_deref().and_then(|state| state.downcast_ref())
    }

    /// The instance's ABI state, if it is a `T`, to change.
    pub fn abi_state_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.abi
            .as_deref_mut()
            .and_then(|state| state.downcast_mut())
    }

    /// Starts a call that must end by `deadline`; `by_caller` when that is
    /// its caller's deadline, earlier than the function's own limit.
    pub fn begin_call(&mut self, deadline: Instant, by_caller: bool, until: Option<Instant>) {
        self.deadline = deadline;
        self.deadline_by_caller = by_caller;
        self.caller_deadline = until;
        self.hand_off = HandOff::new();
    }

    /// When the running call must stop.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Starts the running call's time limit again from now (a message ABI
    /// gives each message of a batch the whole limit), never past the
    /// caller's deadline.
    pub fn renew_deadline(&mut self, limits: &Limits) {
        if !self.deadline_by_caller {
            let own = limits.deadline(Instant::now());
            self.deadline = match self.caller_deadline {
                Some(until) if until < own => {
                    self.deadline_by_caller = true;
                    until
                }
                _ => own,
            };
        }
    }

    /// Whether the call's deadline is its caller's, earlier than the
    /// function's own limit.
    pub fn deadline_by_caller(&self) -> bool {
        self.deadline_by_caller
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
        self.wasi = Some(Box::new(builder.build()));
    }

    /// Gives a preview 1 program this context.
    pub fn set_wasi_p1(&mut self, builder: &mut WasiCtxBuilder) {
        self.p1 = Some(Box::new(builder.build_p1()));
    }

    /// The preview 1 context; an empty one if none was set.
    pub fn wasi_p1(&mut self) -> &mut WasiP1Ctx {
        self.p1
            .get_or_insert_with(|| Box::new(WasiCtxBuilder::new().build_p1()))
    }

    /// What the function's outbound requests are checked against.
    pub fn outbound(&self) -> &OutboundGuard {
        &self.outbound
    }

    /// The resources of the 2023 wasi-http preview's calls.
    pub fn http_2023(&mut self) -> &mut Http2023 {
        self.http_2023.get_or_insert_default()
    }

    /// Whether the engine was interrupted.
    pub fn is_interrupted(&self) -> bool {
        self.interrupted.is_raised()
    }

    /// A fresh state for a new instance of `function` that takes over the
    /// running call from this one (a message ABI replacing an instance
    /// that trapped): the same deadlines and worker hand-off, a new memory
    /// cap, no ABI or WASI state yet. What this one's guest wrote is logged
    /// first.
    pub fn take_over_call(&mut self, site: &Site) -> HostState {
        self.end_call();
        let mut next = HostState::new(site);
        next.deadline = self.deadline;
        next.deadline_by_caller = self.deadline_by_caller;
        next.caller_deadline = self.caller_deadline;
        next.hand_off = std::mem::replace(&mut self.hand_off, HandOff::new());
        next
    }

    /// Logs the rest of the call's output.
    pub fn end_call(&self) {
        self.stdout.end_call();
        self.stderr.end_call();
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        let outbound = &self.outbound;
        let (ctx, hooks) = &mut **self
            .http
            .get_or_insert_with(|| Box::new((WasiHttpCtx::new(), OutboundHooks(outbound.clone()))));
        WasiHttpCtxView {
            ctx,
            table: &mut self.table,
            hooks,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let (stdout, stderr) = (&self.stdout, &self.stderr);
        // Built on first use: seeding its random generators is a large share
        // of instantiation, and most typed functions never touch WASI.
        let ctx = self.wasi.get_or_insert_with(|| {
            Box::new(
                WasiCtxBuilder::new()
                    .stdout(stdout.clone())
                    .stderr(stderr.clone())
                    .build(),
            )
        });
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}
