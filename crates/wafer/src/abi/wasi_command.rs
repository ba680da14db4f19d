//! `abi: wasi-command`, a WASI program run to completion per call.
//!
//! Guest contract, as Dapr's `bindings.wasm` and Fluent Bit's `exec_wasi`
//! expect it:
//!
//! * a **preview 1 core module** imports `wasi_snapshot_preview1` (and
//!   may import the 2023 preview of wasi-http, as Dapr's TinyGo HTTP
//!   clients do: [`preview2023`]; not in a strict sandbox) and exports
//!   `_start` (and its `memory`); `proc_exit(n)` ends it with status `n`.
//! * a **preview 2 component** exports `wasi:cli/run`; it imports what the
//!   grant model links (see [`crate::wasi::grants`]). Its status is 0 or 1:
//!   `wasi:cli/exit` reports only success or failure.
//!
//! Input bytes are its stdin, the call's arguments follow the entry's in
//! argv; its answer is what it wrote to stdout, with stderr and the exit
//! status kept. A `_start` that has run cannot run again, so every call gets
//! a fresh instance from the program's `InstancePre`.

use wasmtime::{Engine, InstancePre, Store};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p2::bindings::CommandPre;

use super::wasi_http::preview2023;
use super::{Abi, Answer, Fault, LoadContext, LoadError, Prepared, Site, Step};
use crate::call::{CommandInput, CommandOutput, Input, InputForm, Output};
use crate::error::ProblemKind;
use crate::host::HostState;
use crate::wasi::output::{self, Stream};

/// The preview 1 import module.
const WASI_P1: &str = "wasi_snapshot_preview1";

/// `abi: wasi-command`.
pub(crate) struct WasiCommand;

impl Abi for WasiCommand {
    fn load(&self, cx: &LoadContext<'_>, module: &[u8]) -> Result<Box<dyn Prepared>, LoadError> {
        Ok(Box::new(CommandProgram::load(cx, module)?))
    }
}

/// A WASI program, compiled and pre-linked.
pub(crate) enum CommandProgram {
    /// A `wasi_snapshot_preview1` core module.
    P1(InstancePre<HostState>),
    /// A component exporting `wasi:cli/run`.
    P2(CommandPre<HostState>),
}

impl CommandProgram {
    /// Compiles `bytes` (a core module or a component) and links it.
    fn load(cx: &LoadContext<'_>, bytes: &[u8]) -> Result<Self, LoadError> {
        let source_field = cx.source_field;
        let not_loadable = |e: wasmtime::Error| {
            LoadError::new(
                ProblemKind::InvalidModule,
                source_field,
                format!("not a loadable WebAssembly binary: {e:#}"),
            )
        };
        let not_linked = |e: wasmtime::Error| {
            LoadError::new(
                ProblemKind::Import,
                source_field,
                format!("cannot link its imports: {e:#}"),
            )
        };
        if wasmparser::Parser::is_core_wasm(bytes) {
            let module = cx.compiler.module(bytes).map_err(not_loadable)?;
            for import in module.imports() {
                let wasi_http = preview2023::MODULES.contains(&import.module());
                if import.module() != WASI_P1 && !wasi_http {
                    return Err(LoadError::new(
                        ProblemKind::Import,
                        source_field,
                        format!(
                            "imports {}::{}, which wafer does not provide (a WASI program imports {WASI_P1}, and the 2023 preview of wasi-http)",
                            import.module(),
                            import.name()
                        ),
                    ));
                }
                if wasi_http && cx.sandbox.strict {
                    return Err(LoadError::new(
                        ProblemKind::Import,
                        source_field,
                        format!(
                            "imports {}::{}: wasi-http cannot be instantiated in a strict sandbox (Dapr refuses it too)",
                            import.module(),
                            import.name()
                        ),
                    ));
                }
            }
            if module.get_export("_start").is_none() {
                return Err(LoadError::new(
                    ProblemKind::Export,
                    source_field,
                    "not a WASI command: it exports no `_start`",
                ));
            }
            let pre = cx
                .linkers
                .modules(cx.sandbox.strict)
                .instantiate_pre(&module)
                .map_err(not_linked)?;
            Ok(CommandProgram::P1(pre))
        } else {
            let component = cx.component(bytes)?;
            let pre = cx.link_component(&component)?;
            let pre = CommandPre::new(pre).map_err(|e| {
                LoadError::new(
                    ProblemKind::Export,
                    source_field,
                    format!("not a WASI command: it does not export wasi:cli/run ({e:#})"),
                )
            })?;
            Ok(CommandProgram::P2(pre))
        }
    }

    /// The program's input: its own form, or JSON arguments as argv.
    fn command_input(input: Input) -> Result<CommandInput, Fault> {
        match input {
            Input::Program(input) => Ok(input),
            Input::Json(args) => Ok(CommandInput::from_json_args(args)),
            other => Err(Fault::WrongInput(format!(
                "is a WASI program (abi: wasi-command): run it with arguments and stdin, not {}",
                other.form()
            ))),
        }
    }

    /// Gives the store a WASI context for this run: the sandbox, the run's
    /// args and stdin, and output captured under `max_output_bytes` (kept
    /// in the store, so that the call path finds it whatever happens).
    fn set_up_wasi(
        &self,
        site: &Site,
        host: &mut HostState,
        input: CommandInput,
    ) -> Result<output::Output, Fault> {
        let output = output::Output::new(site.limits.max_output_bytes, input.output);
        let mut builder = site
            .sandbox
            .builder(
                &input.args,
                &input.stdin,
                output.stream(Stream::Stdout),
                output.stream(Stream::Stderr),
            )
            .map_err(Fault::Sandbox)?;
        match self {
            CommandProgram::P1(_) => host.set_wasi_p1(&mut builder),
            CommandProgram::P2(_) => host.set_wasi(&mut builder),
        }
        host.capture(output.clone());
        Ok(output)
    }

    /// Instantiates the program in `store` and runs it to the end; its exit
    /// status. Traps and limits are errors.
    async fn run(&self, store: &mut Store<HostState>) -> wasmtime::Result<i32> {
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

impl Prepared for CommandProgram {
    fn engine(&self) -> &Engine {
        match self {
            CommandProgram::P1(pre) => pre.module().engine(),
            CommandProgram::P2(pre) => pre.instance_pre().component().engine(),
        }
    }

    fn signature(&self) -> &str {
        "command(args, stdin) -> stdout"
    }

    fn input_form(&self) -> InputForm {
        InputForm::Program
    }

    /// A `_start` that has run cannot run again.
    fn reuses_instances(&self) -> bool {
        false
    }

    fn is_sync(&self) -> bool {
        false
    }

    /// The program is instantiated by each run, once its input is known.
    fn instantiate<'a>(
        &'a self,
        _site: &'a Site,
        _store: &'a mut Store<HostState>,
    ) -> Step<'a, Result<(), Fault>> {
        Step::Ready(Ok(()))
    }

    fn invoke<'a>(
        &'a self,
        site: &'a Site,
        store: &'a mut Store<HostState>,
        input: Input,
    ) -> Step<'a, Result<Answer, Fault>> {
        let output = match Self::command_input(input)
            .and_then(|input| self.set_up_wasi(site, store.data_mut(), input))
        {
            Ok(output) => output,
            Err(fault) => return Step::Ready(Err(fault)),
        };
        Step::Pending(Box::pin(async move {
            let exit_code = self.run(store).await.map_err(Fault::Wasm)?;
            let written = output.take();
            Ok(Answer {
                output: Output::Program(CommandOutput {
                    stdout: written.stdout,
                    stderr: written.stderr,
                    exit_code,
                }),
                guest_error: exit_code != 0,
            })
        }))
    }
}
