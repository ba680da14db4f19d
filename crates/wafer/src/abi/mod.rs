//! How a call crosses into the guest: one module per ABI, each behind the
//! same small contract, each opening with its exact guest contract.
//!
//! # The contract
//!
//! An ABI is a unit struct implementing [`Abi`] plus the type it loads,
//! implementing [`Prepared`]:
//!
//! 1. **Loading** ([`Abi::load`]): validate an entry's module (compile it
//!    through the [`Compiler`], check its imports and exports, link it
//!    against the [`Linkers`] it needs) and return a [`Prepared`], or a
//!    [`LoadError`] naming the field at fault and the problem's kind.
//! 2. **Instances** ([`Prepared::instantiate`]): set up one instance's
//!    host state (its WASI context, from the entry's sandbox) and
//!    instantiate. What the ABI keeps of the instance (an export's handle,
//!    the message a host function reads) is a type of its own, kept in the
//!    store's data ([`HostState::set_abi_state`]), where both the next
//!    invocation and the ABI's host functions (`Caller<HostState>`) find it.
//! 3. **One invocation** ([`Prepared::invoke`]): move the [`Input`] in,
//!    run the guest, move the [`Output`] out. Input of a form the ABI does
//!    not take is a [`Fault::WrongInput`].
//!
//! The call path ([`crate::Function`]) does everything else once for every
//! ABI: pools, limits and deadlines, metrics, logging, and turning what
//! wasmtime reported into an error kind.
//!
//! A step that can finish without waiting returns [`Step::Ready`]; that
//! keeps synchronous calls (a component without imports) free of boxed
//! futures and fibers. One that may wait returns a boxed future.
//!
//! # Adding an ABI
//!
//! One new file here and one line in [`lookup`]. `benthos` is the model
//! of a message ABI: `load` compiles the core module and links the
//! `benthos_wasm` / `bento_wasm` host functions (onto a clone of the
//! preview 1 linker when the guest imports WASI); `instantiate` runs
//! `_start`/`_initialize` once and keeps the guest's exports in its ABI
//! state; `invoke` puts each message of an [`Input::Messages`] batch in
//! that state for the host functions, calls the export and answers the
//! rewritten messages. `fluentbit` will have the same shape, with the
//! record copied into guest memory through the guest's allocator (or
//! host-grown pages) before the call and the answer read from the returned
//! pointer.

mod benthos;
mod core_module;
mod fluentbit;
mod linkers;
pub(crate) mod wasi_command;
pub(crate) mod wasi_http;
pub(crate) mod wit;

pub(crate) use linkers::Linkers;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use wasmtime::component::types::Type;
use wasmtime::component::{Component, InstancePre};
use wasmtime::{Engine, Store};

use crate::call::{Input, InputForm, Output};
use crate::compiler::Compiler;
use crate::engine::Interrupt;
use crate::error::ProblemKind;
use crate::host::HostState;
use crate::limits::Limits;
use crate::registry;
use crate::values::ValueError;
use crate::wasi::grants::{check_component_imports, split_import};
use crate::wasi::outbound_http::OutboundGuard;
use crate::wasi::{Sandbox, SandboxError};

/// The ABIs wafer runs, by the entry's `abi:`; `None` for those the
/// registry accepts but that are not active yet.
pub(crate) fn lookup(abi: registry::Abi) -> Option<&'static dyn Abi> {
    match abi {
        registry::Abi::Wit => Some(&wit::Wit),
        registry::Abi::WasiCommand => Some(&wasi_command::WasiCommand),
        registry::Abi::Benthos => Some(&benthos::Benthos),
        registry::Abi::Fluentbit => Some(&fluentbit::Fluentbit),
        registry::Abi::HttpProxy => Some(&wasi_http::proxy::HttpProxy),
    }
}

/// One ABI: how it loads a module for an entry.
pub(crate) trait Abi: Sync {
    /// Validates `module` (a core module or a component) for the entry in
    /// `cx` and prepares it for instantiation.
    fn load(&self, cx: &LoadContext<'_>, module: &[u8]) -> Result<Box<dyn Prepared>, LoadError>;
}

/// What an ABI needs to load a module.
pub(crate) struct LoadContext<'a> {
    /// Compiles through the disk cache.
    pub compiler: &'a Compiler,
    /// The WASI linkers every ABI may link against.
    pub linkers: &'a Linkers,
    /// The entry's `method`: the export to call.
    pub method: Option<&'a str>,
    /// The entry's `wit`: a core module's signature.
    pub wit: Option<&'a str>,
    /// How a Fluent Bit filter takes and answers records.
    pub event_format: registry::EventFormat,
    /// The world the guest runs in (`strict` picks the linkers).
    pub sandbox: &'a Sandbox,
    /// The entry field that names the module, for problems with it.
    pub source_field: &'static str,
}

impl LoadContext<'_> {
    /// `bytes` compiled as a component.
    pub fn component(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        self.compiler.component(bytes).map_err(|e| {
            LoadError::new(
                ProblemKind::InvalidModule,
                self.source_field,
                format!("not a loadable WebAssembly binary: {e:#}"),
            )
        })
    }

    /// `component`'s imports checked against the grant model (and, in a
    /// strict sandbox, refused if it makes HTTP calls), then linked.
    pub fn link_component(
        &self,
        component: &Component,
    ) -> Result<InstancePre<HostState>, LoadError> {
        let refused = |message| LoadError::new(ProblemKind::Import, self.source_field, message);
        check_component_imports(self.compiler.engine(), component).map_err(refused)?;
        if self.sandbox.strict {
            // Dapr refuses wasi-http in a strict sandbox: it is not
            // deterministic.
            let types = component.component_type();
            let outgoing = types
                .imports(self.compiler.engine())
                .find(|(name, _)| split_import(name) == ("wasi:http", Some("outgoing-handler")));
            if let Some((name, _)) = outgoing {
                return Err(refused(format!(
                    "imports {name}: wasi-http cannot be instantiated in a strict sandbox (Dapr refuses it too)"
                )));
            }
        }
        self.linkers
            .components(self.sandbox.strict)
            .instantiate_pre(component)
            .map_err(|e| refused(format!("cannot link its imports: {e:#}")))
    }
}

/// What every call of one function shares: who it is and what it may do.
pub(crate) struct Site {
    /// The function's id.
    pub id: Arc<str>,
    /// Its limits.
    pub limits: Limits,
    /// Its WASI world.
    pub sandbox: Sandbox,
    /// The engine's interrupt (Ctrl-C, shutdown).
    pub interrupted: Interrupt,
    /// What its outbound HTTP requests are checked against.
    pub outbound: Arc<OutboundGuard>,
}

impl Site {
    /// Gives an instance's host state its WASI context. An empty sandbox
    /// gets one on first use (most typed functions never touch WASI); one
    /// that grants something is set up now, so that a missing required
    /// variable fails this call.
    pub fn set_up_wasi(&self, host: &mut HostState) -> Result<(), Fault> {
        if self.sandbox.is_empty() {
            return Ok(());
        }
        let mut builder = self
            .sandbox
            .instance_builder(host)
            .map_err(Fault::Sandbox)?;
        host.set_wasi(&mut builder);
        Ok(())
    }
}

/// A module loaded by its ABI: compiled, linked, its export resolved.
pub(crate) trait Prepared: Send + Sync + 'static {
    /// The engine it was compiled for.
    fn engine(&self) -> &Engine;

    /// What a caller sees of it: `func(a: s32, b: s32) -> s32`.
    fn signature(&self) -> &str;

    /// The form of input it takes.
    fn input_form(&self) -> InputForm;

    /// Its parameters, for typed values; none for other ABIs.
    fn params(&self) -> &[(String, Type)] {
        &[]
    }

    /// Whether an instance may serve another call after a clean one.
    fn reuses_instances(&self) -> bool;

    /// Whether instantiation and calls finish without ever waiting (no
    /// imports): they then run on the caller's thread, without a fiber.
    fn is_sync(&self) -> bool;

    /// A new instance in `store`; what [`Prepared::invoke`] needs to reach
    /// it again goes in the store's ABI state.
    fn instantiate<'a>(
        &'a self,
        site: &'a Site,
        store: &'a mut Store<HostState>,
    ) -> Step<'a, Result<(), Fault>>;

    /// One call on the instance in `store`.
    fn invoke<'a>(
        &'a self,
        site: &'a Site,
        store: &'a mut Store<HostState>,
        input: Input,
    ) -> Step<'a, Result<Answer, Fault>>;
}

/// A step that finished at once, or a future that finishes it.
pub(crate) enum Step<'a, T> {
    /// Done without waiting.
    Ready(T),
    /// Waits (on the host, or at epoch ticks to yield).
    Pending(Pin<Box<dyn Future<Output = T> + Send + 'a>>),
}

/// A call's answer, and whether the guest reported a failure in it (a
/// top-level `result` error, a non-zero exit status): still a successful
/// call, counted apart in the metrics.
pub(crate) struct Answer {
    pub output: Output,
    pub guest_error: bool,
}

/// Why an instantiation or a call failed, before it is an [`crate::Error`]
/// (the call path adds the function's id, sorts wasmtime's errors into
/// kinds and attaches what a program wrote).
pub(crate) enum Fault {
    /// What wasmtime reported: a trap, a limit, an interrupt, a guest that
    /// broke the ABI.
    Wasm(wasmtime::Error),
    /// The arguments do not fit the signature; the guest did not run.
    Arguments(ValueError),
    /// The sandbox could not be set up; the guest did not run.
    Sandbox(SandboxError),
    /// The input's form is not one this ABI takes; the guest did not run.
    WrongInput(String),
}

impl Fault {
    /// Whether the guest never ran, so its instance is as good as before.
    pub fn left_instance_untouched(&self) -> bool {
        matches!(self, Fault::Arguments(_) | Fault::WrongInput(_))
    }
}

/// Why a function could not be loaded: the field at fault, the kind of
/// problem and what is wrong.
#[derive(Debug)]
pub(crate) struct LoadError {
    pub kind: ProblemKind,
    pub field: &'static str,
    pub message: String,
}

impl LoadError {
    pub(crate) fn new(kind: ProblemKind, field: &'static str, message: impl Into<String>) -> Self {
        LoadError {
            kind,
            field,
            message: message.into(),
        }
    }
}
