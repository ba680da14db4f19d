//! The WASI linkers every ABI links against: preview 2 (with wasi:http)
//! for components,
//! preview 1 for core modules, each also in a strict form whose sleeps
//! return at once (Dapr's `strictSandbox`). Built once per runtime; an ABI
//! with host functions of its own adds them to a clone at load.

use wasmtime::Engine;
use wasmtime::component::Linker as ComponentLinker;

use crate::host::HostState;

/// The four WASI linkers of a runtime.
pub(crate) struct Linkers {
    components: ComponentLinker<HostState>,
    strict_components: ComponentLinker<HostState>,
    modules: wasmtime::Linker<HostState>,
    strict_modules: wasmtime::Linker<HostState>,
}

impl Linkers {
    /// WASI preview 2 and preview 1, each in a plain and a strict form.
    pub fn new(engine: &Engine) -> wasmtime::Result<Linkers> {
        let mut components = ComponentLinker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut components)?;
        // Outgoing requests pass the function's outbound guard (its hooks).
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut components)?;
        let mut strict_components = components.clone();
        crate::wasi::strict::add_instant_clock_subscriptions(&mut strict_components)?;
        let mut modules = wasmtime::Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut modules, HostState::wasi_p1)?;
        modules.allow_shadowing(true);
        // wasmtime-wasi traps on a status of 126 or more (WASI reserves
        // them); programs use them all the same, and a shell carries up to
        // 255: pass every status on as the program gave it.
        modules.func_wrap(
            "wasi_snapshot_preview1",
            "proc_exit",
            |status: i32| -> wasmtime::Result<()> { Err(wasmtime_wasi::I32Exit(status).into()) },
        )?;
        // Dapr's TinyGo HTTP clients; a strict sandbox refuses them at load.
        crate::abi::wasi_http::preview2023::add_to_linker(&mut modules)?;
        let mut strict_modules = modules.clone();
        crate::wasi::strict::add_instant_poll_oneoff(&mut strict_modules)?;
        Ok(Linkers {
            components,
            strict_components,
            modules,
            strict_modules,
        })
    }

    /// The preview 2 linker, strict or not.
    pub fn components(&self, strict: bool) -> &ComponentLinker<HostState> {
        if strict {
            &self.strict_components
        } else {
            &self.components
        }
    }

    /// The preview 1 linker, strict or not.
    pub fn modules(&self, strict: bool) -> &wasmtime::Linker<HostState> {
        if strict {
            &self.strict_modules
        } else {
            &self.modules
        }
    }
}
