//! Functions outside the registry: a WASI program `wafer exec` runs, and
//! the module files a pipeline's components load.

use std::sync::{Arc, OnceLock};

use tokio::sync::OnceCell;

use super::{ModuleSpec, Runtime, Slot, prepare};
use crate::abi;
use crate::error::{Error, Problem, ProblemKind, Result, one_line};
use crate::function::Function;
use crate::limits::{CompileLimits, Limits};
use crate::metrics::FunctionMetrics;
use crate::pools::PoolPolicy;
use crate::registry::{Abi, EventFormat};
use crate::wasi::Sandbox;

impl Runtime {
    /// A WASI program outside the registry (`wafer exec`): `module` (a
    /// preview 1 core module or a preview 2 component, binary or WAT) run
    /// as `id`, in `sandbox`, under `limits`, a fresh instance per run. It
    /// compiles on this thread: call it outside async code.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] when the module does not compile or link (not
    /// Wasm, an import wafer does not provide, no `_start` or `wasi:cli/run`).
    pub fn program(
        &self,
        id: &str,
        module: &[u8],
        sandbox: Sandbox,
        limits: Limits,
    ) -> Result<Function> {
        let spec = ModuleSpec {
            abi: Abi::WasiCommand,
            method: None,
            event_format: EventFormat::default(),
            sandbox,
            limits,
            pool: PoolPolicy::from_config(None),
        };
        self.compile_function(id, module, spec, Arc::new(FunctionMetrics::new()))
    }

    /// A function outside the registry, from a module file (a pipeline's
    /// `wasm` processor): `module` (binary or WAT) loaded as `id` with the
    /// ABI, export, sandbox, limits and pool of `spec`. Its calls are
    /// counted in [`Runtime::metrics_text`] under `id` like a registry
    /// function's. It compiles on this thread: call it outside async code.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] when the module does not compile or link, or
    /// does not fit the ABI; [`Error::Unsupported`] for an ABI that is not
    /// active yet.
    pub fn load_module(&self, id: &str, module: &[u8], spec: ModuleSpec) -> Result<Arc<Function>> {
        let metrics = Arc::new(FunctionMetrics::new());
        let function = Arc::new(self.compile_function(id, module, spec, metrics.clone())?);
        let slot = Slot {
            loaded: OnceCell::new_with(Some(Ok(function.clone()))),
            metrics,
            module: OnceLock::new(),
        };
        self.slots
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), Arc::new(slot));
        Ok(function)
    }

    /// Compiles `module`, a file rather than a registry entry, into a
    /// function whose calls `metrics` count.
    fn compile_function(
        &self,
        id: &str,
        module: &[u8],
        spec: ModuleSpec,
        metrics: Arc<FunctionMetrics>,
    ) -> Result<Function> {
        let refused = |kind, message| Error::Refused {
            id: id.to_string(),
            problems: vec![Problem::new(kind, message).in_file(id)],
        };
        let Some(abi) = abi::lookup(spec.abi) else {
            return Err(Error::Unsupported {
                id: id.to_string(),
                message: format!("abi {} is not active yet", spec.abi.as_str()),
            });
        };
        // WAT, of a core module or a component alike, is encoded first.
        let looks_like_wat =
            std::str::from_utf8(module).is_ok_and(|text| text.trim_start().starts_with(['(', ';']));
        let module = if looks_like_wat {
            wat::parse_bytes(module).map_err(|e| {
                refused(
                    ProblemKind::InvalidModule,
                    format!("WAT does not parse: {}", one_line(&e.to_string())),
                )
            })?
        } else {
            module.into()
        };
        let mut cx = self.load_context(None, &spec.sandbox, "file");
        cx.method = spec.method.as_deref();
        cx.event_format = spec.event_format;
        let prepared =
            prepare(abi, &cx, &module, CompileLimits::default()).map_err(|e| match e.kind {
                // Named by a registry field that a file has no flag for.
                ProblemKind::TooLarge => refused(
                    e.kind,
                    format!(
                        "{} (the defaults of a registry entry's `limits`)",
                        e.message
                    ),
                ),
                _ => refused(e.kind, e.message),
            })?;
        tracing::debug!(function = id, "Compiled.");
        Ok(Function::new(
            id,
            prepared,
            spec.pool,
            spec.limits,
            spec.sandbox,
            self.engine.interrupt(),
            metrics,
        ))
    }
}
