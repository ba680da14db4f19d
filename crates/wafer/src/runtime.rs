//! [`Runtime`]: the single entry point every surface calls through.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use serde_json::Value;
use wasmtime::component::Linker;

use crate::abi::LoadError;
use crate::abi::wasi_command::{CommandLinkers, CommandProgram};
use crate::abi::wit::WitFunction;
use crate::engine::{EngineSettings, WaferEngine};
use crate::error::{EngineError, Error, Problem, Result};
use crate::function::Function;
use crate::host::HostState;
use crate::limits::Limits;
use crate::registry::{Abi, EntryKind, FunctionConfig, ModuleSource, Registry};
use crate::wasi::Sandbox;

type Loaded = std::result::Result<Arc<Function>, Vec<Problem>>;

/// A registry, the engine, and the functions compiled so far.
///
/// Functions compile on first use (or all at once with
/// [`Runtime::load_all`]); a compiled function is kept for the runtime's
/// life. `Runtime` is `Send + Sync`: share it behind an `Arc` and call from
/// many tasks at once. Calls run on Tokio and need its timers (a runtime
/// built with `enable_time` or `enable_all`), which bound calls that wait
/// on the host.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = wafer::Registry::load("examples/quickstart")?;
/// let runtime = wafer::Runtime::new(registry)?;
/// let sum = runtime.call("quickstart:add", vec![2.into(), 40.into()]).await?;
/// assert_eq!(sum, 42);
/// # Ok(()) }
/// ```
pub struct Runtime {
    engine: WaferEngine,
    linker: Linker<HostState>,
    p1_linker: wasmtime::Linker<HostState>,
    strict_p1_linker: wasmtime::Linker<HostState>,
    registry: Registry,
    functions: RwLock<HashMap<String, Arc<OnceLock<Loaded>>>>,
}

impl Runtime {
    /// A runtime over `registry` with a new engine whose instance slots are
    /// sized for the registry's pools ([`EngineSettings::for_registry`]).
    ///
    /// # Errors
    ///
    /// When the engine cannot be built (an unsupported host).
    pub fn new(registry: Registry) -> std::result::Result<Runtime, EngineError> {
        let engine = WaferEngine::new(&EngineSettings::for_registry(&registry))?;
        Runtime::with_engine(registry, engine)
    }

    /// A runtime over `registry` sharing an existing engine.
    ///
    /// # Errors
    ///
    /// When WASI cannot be added to the linker (a wasmtime bug).
    pub fn with_engine(
        registry: Registry,
        engine: WaferEngine,
    ) -> std::result::Result<Runtime, EngineError> {
        let mut linker = Linker::new(engine.engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        let mut p1_linker = wasmtime::Linker::new(engine.engine());
        wasmtime_wasi::p1::add_to_linker_async(&mut p1_linker, HostState::wasi_p1)?;
        let mut strict_p1_linker = p1_linker.clone();
        strict_p1_linker.allow_shadowing(true);
        crate::wasi::strict::add_instant_poll_oneoff(&mut strict_p1_linker)?;
        Ok(Runtime {
            engine,
            linker,
            p1_linker,
            strict_p1_linker,
            registry,
            functions: RwLock::new(HashMap::new()),
        })
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The engine.
    pub fn engine(&self) -> &WaferEngine {
        &self.engine
    }

    /// Calls function `id` with JSON arguments and returns its result as
    /// JSON. Every surface (CLI, HTTP, pipelines) calls through here. The
    /// arguments are taken by value: their strings move into the guest call
    /// instead of being copied.
    ///
    /// # Errors
    ///
    /// See [`Error`]: an unknown or refused function, bad arguments, a trap,
    /// an exceeded limit.
    pub async fn call(&self, id: &str, args: Vec<Value>) -> Result<Value> {
        self.function(id)?.call_json(args).await
    }

    /// The function `id`, compiled on first use.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownFunction`], [`Error::NotAFunction`], or
    /// [`Error::Refused`] with every reason the entry cannot load.
    pub fn function(&self, id: &str) -> Result<Arc<Function>> {
        let known = self
            .functions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned();
        let slot = match known {
            Some(slot) => slot,
            None => {
                let mut functions = self.functions.write().unwrap_or_else(|p| p.into_inner());
                functions.entry(id.to_string()).or_default().clone()
            }
        };
        match slot.get_or_init(|| self.load(id)) {
            Ok(function) => Ok(function.clone()),
            Err(problems) if problems.is_empty() => Err(self.not_loadable(id)),
            Err(problems) => Err(Error::Refused {
                id: id.to_string(),
                problems: problems.clone(),
            }),
        }
    }

    /// Compiles every active function of the registry (see
    /// [`FunctionConfig::is_active`](crate::registry::FunctionConfig::is_active)),
    /// calling `progress` after each with (done, total). Returns each
    /// function's outcome, by id.
    pub fn load_all(
        &self,
        mut progress: impl FnMut(usize, usize),
    ) -> Vec<(String, Result<Arc<Function>>)> {
        let ids: Vec<String> = self
            .registry
            .entries()
            .iter()
            .filter(|e| e.function().is_some_and(|f| f.is_active()))
            .map(|e| e.id.clone())
            .collect();
        let total = ids.len();
        ids.into_iter()
            .enumerate()
            .map(|(done, id)| {
                let outcome = self.function(&id);
                progress(done + 1, total);
                (id, outcome)
            })
            .collect()
    }

    /// Compiles every active function and creates the instances their
    /// pools keep from the start (`static`, `adaptive` with `warm_start`).
    /// Returns the functions that failed, with why.
    pub async fn warm_up(&self) -> Vec<(String, Error)> {
        let mut failed = Vec::new();
        for (id, outcome) in self.load_all(|_, _| {}) {
            let warmed = match outcome {
                Ok(function) => function.warm_up().await.map(drop),
                Err(e) => Err(e),
            };
            if let Err(e) = warmed {
                failed.push((id, e));
            }
        }
        failed
    }

    fn not_loadable(&self, id: &str) -> Error {
        match self.registry.get(id) {
            Some(entry) => Error::NotAFunction {
                id: id.to_string(),
                kind: entry.kind_name().to_string(),
            },
            None => Error::UnknownFunction { id: id.to_string() },
        }
    }

    /// Reads, checks and compiles one function. An empty problem list means
    /// the id is not a function at all.
    fn load(&self, id: &str) -> Loaded {
        if let Some(problems) = self.registry.refusal(id) {
            return Err(problems.to_vec());
        }
        let Some(entry) = self.registry.get(id) else {
            return Err(Vec::new());
        };
        let EntryKind::Function(config) = &entry.kind else {
            return Err(Vec::new());
        };
        let locate = |field: &str, message: String| {
            vec![
                Problem::new(message)
                    .in_file(&entry.file)
                    .in_entry(id)
                    .at_field(field),
            ]
        };
        if let Some((field, message)) = config.inactive_reason() {
            return Err(locate(field, message));
        }
        let sandbox = self.registry.sandbox(id).map_err(|p| vec![p])?;
        let bytes = self.registry.module_bytes(id).map_err(|p| vec![p])?;
        let started = std::time::Instant::now();
        let function = self
            .compile(id, config, &bytes, sandbox)
            .map_err(|e| locate(e.field, e.message))?;
        tracing::debug!(function = id, elapsed = ?started.elapsed(), "Compiled.");
        Ok(Arc::new(function))
    }

    /// Compiles and links one function's module for its ABI.
    fn compile(
        &self,
        id: &str,
        config: &FunctionConfig,
        bytes: &[u8],
        sandbox: Sandbox,
    ) -> std::result::Result<Function, LoadError> {
        let source_field = match config.source {
            ModuleSource::WatInline(_) | ModuleSource::WatFile(_) => "source",
            ModuleSource::FsPath { .. } => "path",
            ModuleSource::Url(_) => "url",
        };
        let engine = self.engine.engine();
        let limits = Limits::from_config(&config.limits);
        let interrupted = self.engine.interrupt_flag();
        let pool = config.pool.as_ref();
        if config.abi == Abi::WasiCommand {
            let linkers = CommandLinkers {
                components: &self.linker,
                modules: &self.p1_linker,
                strict_modules: &self.strict_p1_linker,
            };
            let program =
                CommandProgram::load(engine, &linkers, bytes, sandbox.strict, source_field)?;
            return Ok(Function::command(
                id,
                program,
                pool,
                limits,
                sandbox,
                interrupted,
            ));
        }
        let abi = WitFunction::load(engine, &self.linker, bytes, config, source_field)?;
        Ok(Function::typed(id, abi, pool, limits, sandbox, interrupted))
    }
}
