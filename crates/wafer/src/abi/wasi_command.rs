//! `abi: wasi-command`, a WASI program run to completion per call.
//!
//! Guest contract, as Dapr's `bindings.wasm` and Fluent Bit's `exec_wasi`
//! expect it:
//!
//! * a **preview 1 core module** imports only `wasi_snapshot_preview1` and
//!   exports `_start` (and its `memory`); `proc_exit(n)` ends it with
//!   status `n`.
//! * a **preview 2 component** exports `wasi:cli/run`; it imports what the
//!   grant model links (see [`crate::wasi::grants`]). Its status is 0 or 1:
//!   `wasi:cli/exit` reports only success or failure.
//!
//! Input bytes are its stdin, the call's arguments follow the entry's in
//! argv; its answer is what it wrote to stdout, with stderr and the exit
//! status kept. A `_start` that has run cannot run again, so every call gets
//! a fresh instance from the program's `InstancePre`.

use wasmtime::component::{Component, Linker as ComponentLinker};
use wasmtime::{Engine, InstancePre, Linker, Store};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p2::bindings::CommandPre;

use super::LoadError;
use crate::compiler::Compiler;
use crate::host::HostState;
use crate::wasi::grants::check_component_import;

/// The preview 1 import module.
const WASI_P1: &str = "wasi_snapshot_preview1";

/// A WASI program, compiled and pre-linked.
pub(crate) enum CommandProgram {
    /// A `wasi_snapshot_preview1` core module.
    P1(InstancePre<HostState>),
    /// A component exporting `wasi:cli/run`.
    P2(CommandPre<HostState>),
}

/// The linkers programs are pre-linked with.
pub(crate) struct CommandLinkers<'a> {
    /// Preview 2 (shared with typed functions).
    pub components: &'a ComponentLinker<HostState>,
    /// Preview 2 with instant sleeps, for strict sandboxes.
    pub strict_components: &'a ComponentLinker<HostState>,
    /// Preview 1.
    pub modules: &'a Linker<HostState>,
    /// Preview 1 with instant sleeps, for strict sandboxes.
    pub strict_modules: &'a Linker<HostState>,
}

impl CommandProgram {
    /// Compiles `bytes` (a core module or a component) and links it.
    pub fn load(
        compiler: &Compiler,
        linkers: &CommandLinkers<'_>,
        bytes: &[u8],
        strict: bool,
        source_field: &'static str,
    ) -> Result<Self, LoadError> {
        let not_loadable = |e: wasmtime::Error| {
            LoadError::new(
                source_field,
                format!("not a loadable WebAssembly binary: {e:#}"),
            )
        };
        if wasmparser::Parser::is_core_wasm(bytes) {
            let module = compiler.module(bytes).map_err(not_loadable)?;
            for import in module.imports() {
                if import.module() != WASI_P1 {
                    return Err(LoadError::new(
                        source_field,
                        format!(
                            "imports {}::{}, which wafer does not provide (a WASI program imports only {WASI_P1})",
                            import.module(),
                            import.name()
                        ),
                    ));
                }
            }
            if module.get_export("_start").is_none() {
                return Err(LoadError::new(
                    source_field,
                    "not a WASI command: it exports no `_start`",
                ));
            }
            let linker = if strict {
                linkers.strict_modules
            } else {
                linkers.modules
            };
            let pre = linker.instantiate_pre(&module).map_err(|e| {
                LoadError::new(source_field, format!("cannot link its imports: {e:#}"))
            })?;
            Ok(CommandProgram::P1(pre))
        } else {
            let component = compiler.component(bytes).map_err(not_loadable)?;
            check_imports(compiler.engine(), &component)
                .map_err(|m| LoadError::new(source_field, m))?;
            let linker = if strict {
                linkers.strict_components
            } else {
                linkers.components
            };
            let pre = linker.instantiate_pre(&component).map_err(|e| {
                LoadError::new(source_field, format!("cannot link its imports: {e:#}"))
            })?;
            let pre = CommandPre::new(pre).map_err(|e| {
                LoadError::new(
                    source_field,
                    format!("not a WASI command: it does not export wasi:cli/run ({e:#})"),
                )
            })?;
            Ok(CommandProgram::P2(pre))
        }
    }

    /// The engine the program was compiled for.
    pub fn engine(&self) -> &Engine {
        match self {
            CommandProgram::P1(pre) => pre.module().engine(),
            CommandProgram::P2(pre) => pre.instance_pre().component().engine(),
        }
    }

    /// Whether this is a preview 1 program (its store needs a preview 1
    /// context).
    pub fn is_p1(&self) -> bool {
        matches!(self, CommandProgram::P1(_))
    }

    /// Instantiates the program in `store` and runs it to the end; its exit
    /// status. Traps and limits are errors.
    pub async fn run(&self, store: &mut Store<HostState>) -> wasmtime::Result<i32> {
        let outcome = match self {
            CommandProgram::P1(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
                start.call_async(&mut *store, ()).await.map(|()| 0)
            }
            CommandProgram::P2(pre) => {
                let command = pre.instantiate_async(&mut *store).await?;
                command
                    .wasi_cli_run()
                    .call_run(&mut *store)
                    .await
                    .map(|status| if status.is_ok() { 0 } else { 1 })
            }
        };
        match outcome {
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(exit) => Ok(exit.0),
                None => Err(e),
            },
            ok => ok,
        }
    }
}

/// Refuses a component that imports what wafer does not link, naming the
/// import.
pub(crate) fn check_imports(engine: &Engine, component: &Component) -> Result<(), String> {
    let refused: Vec<String> = component
        .component_type()
        .imports(engine)
        .filter_map(|(name, _)| check_component_import(name).err())
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(refused.join("; "))
    }
}
