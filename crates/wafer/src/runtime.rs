//! [`Runtime`]: the single entry point every surface calls through.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

use serde_json::Value;
use wasmtime::component::Linker;

use crate::abi::LoadError;
use crate::abi::wasi_command::{CommandLinkers, CommandProgram};
use crate::abi::wit::WitFunction;
use crate::compiler::{CompileStats, Compiler};
use crate::engine::{EngineSettings, WaferEngine};
use crate::error::{EngineError, Error, Problem, Result};
use crate::function::Function;
use crate::host::HostState;
use crate::limits::Limits;
use crate::registry::{Abi, EntryKind, FunctionConfig, ModuleSource, Registry};
use crate::sources::{DiskCache, FetchLimits, ModuleSources};
use crate::wasi::Sandbox;

/// Where a [`Runtime`] keeps what it fetched and compiled, and how it
/// fetches.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// A private folder for fetched modules and compiled code, shared
    /// safely by several processes. `None` (the default) keeps nothing on
    /// disk: URL modules are downloaded and everything compiled at every
    /// start.
    pub cache_dir: Option<PathBuf>,
    /// Timeout and size cap of module downloads.
    pub fetch: FetchLimits,
}

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
    strict_linker: Linker<HostState>,
    p1_linker: wasmtime::Linker<HostState>,
    strict_p1_linker: wasmtime::Linker<HostState>,
    compiler: Compiler,
    sources: ModuleSources,
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
        Runtime::with_options(registry, RuntimeOptions::default())
    }

    /// [`Runtime::new`] with a disk cache and download limits.
    ///
    /// # Errors
    ///
    /// When the engine cannot be built (an unsupported host).
    pub fn with_options(
        registry: Registry,
        options: RuntimeOptions,
    ) -> std::result::Result<Runtime, EngineError> {
        let engine = WaferEngine::new(&EngineSettings::for_registry(&registry))?;
        Runtime::with_engine(registry, engine, options)
    }

    /// A runtime over `registry` sharing an existing engine.
    ///
    /// # Errors
    ///
    /// When WASI cannot be added to the linker (a wasmtime bug).
    pub fn with_engine(
        registry: Registry,
        engine: WaferEngine,
        options: RuntimeOptions,
    ) -> std::result::Result<Runtime, EngineError> {
        let mut linker = Linker::new(engine.engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        let mut strict_linker = linker.clone();
        crate::wasi::strict::add_instant_clock_subscriptions(&mut strict_linker)?;
        let mut p1_linker = wasmtime::Linker::new(engine.engine());
        wasmtime_wasi::p1::add_to_linker_async(&mut p1_linker, HostState::wasi_p1)?;
        let mut strict_p1_linker = p1_linker.clone();
        strict_p1_linker.allow_shadowing(true);
        crate::wasi::strict::add_instant_poll_oneoff(&mut strict_p1_linker)?;
        let cache = options.cache_dir.and_then(|dir| match DiskCache::open(&dir) {
            Ok(cache) => Some(cache),
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, "Cannot use the cache directory; nothing is cached.");
                None
            }
        });
        Ok(Runtime {
            compiler: Compiler::new(engine.engine(), cache.clone()),
            sources: ModuleSources::new(cache, options.fetch),
            engine,
            linker,
            strict_linker,
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

    /// How many modules were compiled, and how many loaded compiled from
    /// the disk cache, so far.
    pub fn compile_stats(&self) -> CompileStats {
        self.compiler.stats()
    }

    /// The disk cache, if the runtime has one.
    pub fn cache(&self) -> Option<&DiskCache> {
        self.sources.cache()
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
            Err(problems) => {
                if self.fetched_from_url(id) {
                    // A download may fail for a while (a server restarting,
                    // a network blip): forget the failure, so that a later
                    // call tries again instead of failing until restart.
                    let mut functions = self.functions.write().unwrap_or_else(|p| p.into_inner());
                    if functions
                        .get(id)
                        .is_some_and(|known| Arc::ptr_eq(known, &slot))
                    {
                        functions.remove(id);
                    }
                }
                Err(Error::Refused {
                    id: id.to_string(),
                    problems: problems.clone(),
                })
            }
        }
    }

    fn fetched_from_url(&self, id: &str) -> bool {
        self.registry
            .get(id)
            .and_then(|entry| entry.function())
            .is_some_and(|function| matches!(function.source, ModuleSource::Url(_)))
    }

    /// A WASI program outside the registry (`wafer exec`): `module` (a
    /// preview 1 core module or a preview 2 component) run as `id`, in
    /// `sandbox`, under `limits`, a fresh instance per run.
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
        let linkers = self.command_linkers();
        let program =
            CommandProgram::load(&self.compiler, &linkers, module, sandbox.strict, "file")
                .map_err(|e| Error::Refused {
                    id: id.to_string(),
                    problems: vec![Problem::new(e.message).in_entry(id)],
                })?;
        Ok(Function::command(
            id,
            program,
            None,
            limits,
            sandbox,
            self.engine.interrupt_flag(),
        ))
    }

    fn command_linkers(&self) -> CommandLinkers<'_> {
        CommandLinkers {
            components: &self.linker,
            strict_components: &self.strict_linker,
            modules: &self.p1_linker,
            strict_modules: &self.strict_p1_linker,
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
        let locate = |field: &str, message: String| vec![entry.problem(field, message)];
        if let Some((field, message)) = config.inactive_reason() {
            return Err(locate(field, message));
        }
        let sandbox = self.registry.sandbox(id).map_err(|p| vec![p])?;
        let bytes = match &config.source {
            ModuleSource::Url(url) => self
                .sources
                .load(url, config.hash)
                .map(|module| module.bytes)
                .map_err(|e| locate(config.source_field(), e.to_string()))?,
            _ => self.registry.module_bytes(id).map_err(|p| vec![p])?,
        };
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
        let source_field = config.source_field();
        let limits = Limits::from_config(&config.limits);
        let interrupted = self.engine.interrupt_flag();
        let pool = config.pool.as_ref();
        if config.abi == Abi::WasiCommand {
            let linkers = self.command_linkers();
            let program = CommandProgram::load(
                &self.compiler,
                &linkers,
                bytes,
                sandbox.strict,
                source_field,
            )?;
            return Ok(Function::command(
                id,
                program,
                pool,
                limits,
                sandbox,
                interrupted,
            ));
        }
        let abi = WitFunction::load(&self.compiler, &self.linker, bytes, config, source_field)?;
        Ok(Function::typed(id, abi, pool, limits, sandbox, interrupted))
    }
}
