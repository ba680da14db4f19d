//! [`Runtime`]: the registry, the engine, and the one entry point every
//! surface calls through ([`Runtime::invoke`]); a reload's next generation
//! ([`Runtime::successor`], in `successor.rs`).

mod file_modules;
mod metrics;
mod successor;

pub use successor::Carried;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

use serde_json::Value;
use tokio::sync::OnceCell;

use crate::abi::{self, Linkers, LoadContext, LoadError};
use crate::blocking::off_worker;
use crate::call::{Input, Output};
use crate::compiler::{CompileStats, Compiler};
use crate::engine::{EngineSettings, WaferEngine};
use crate::error::{EngineError, Error, Problem, ProblemKind, Result};
use crate::function::Function;
use crate::hash::Sha256Hash;
use crate::limits::{CompileLimits, Limits};
use crate::metrics::{Connections, FunctionMetrics, PipelineMetrics, Reloads};
use crate::pools::PoolPolicy;
use crate::registry::{Abi, Entry, EventFormat, FunctionConfig, ModuleSource, Registry};
use crate::sources::{DiskCache, FetchLimits, ModuleSources};
use crate::wasi::Sandbox;

/// How to load a module that is not a registry entry
/// ([`Runtime::load_module`]).
#[derive(Debug, Clone)]
pub struct ModuleSpec {
    /// How calls cross into the guest.
    pub abi: Abi,
    /// The export to call; the ABI's default when `None`.
    pub method: Option<String>,
    /// How an `abi: fluentbit` filter takes and answers records.
    pub event_format: EventFormat,
    /// The WASI world the guest sees.
    pub sandbox: Sandbox,
    /// Time, memory and output limits.
    pub limits: Limits,
    /// How many instances run at once and wait.
    pub pool: PoolPolicy,
}

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

/// One registry function's place in the runtime: its load, shared by every
/// first caller, and its call counters, kept across retried loads (and
/// reloads).
struct Slot {
    loaded: OnceCell<Loaded>,
    metrics: Arc<FunctionMetrics>,
    /// The hash of the module bytes a registry function was loaded from:
    /// what tells a reload whether its module file changed.
    module: OnceLock<Sha256Hash>,
}

impl Slot {
    /// A slot whose function is not loaded yet.
    fn unloaded(metrics: Arc<FunctionMetrics>) -> Slot {
        Slot {
            loaded: OnceCell::new(),
            metrics,
            module: OnceLock::new(),
        }
    }
}

/// A registry, the engine, and the functions loaded so far.
///
/// Functions load on first use (or all at once with
/// [`Runtime::load_all`]); a loaded function is kept for the runtime's
/// life. Loading (a download, compiling) runs off Tokio's async workers,
/// and concurrent first callers wait for one shared load. `Runtime` is
/// `Send + Sync`: share it behind an `Arc` and call from many tasks at
/// once. Calls run on Tokio and need its timers (a runtime built with
/// `enable_time` or `enable_all`), which bound calls that wait on the host.
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
    linkers: Arc<Linkers>,
    compiler: Arc<Compiler>,
    sources: ModuleSources,
    registry: Registry,
    slots: RwLock<HashMap<String, Arc<Slot>>>,
    pipelines: RwLock<Vec<Arc<PipelineMetrics>>>,
    /// Held by the components that connect: a connection no one holds
    /// any more (its pipeline ended) is no longer listed.
    connections: Connections,
    /// 1, and one more for each [`Runtime::successor`].
    generation: u64,
    reloads: Arc<Reloads>,
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
        let linkers = Arc::new(Linkers::new(engine.engine())?);
        let cache = options.cache_dir.and_then(|dir| match DiskCache::open(&dir) {
            Ok(cache) => Some(cache),
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, "Cannot use the cache directory; nothing is cached.");
                None
            }
        });
        Ok(Runtime {
            compiler: Arc::new(Compiler::new(engine.engine(), cache.clone())),
            sources: ModuleSources::new(cache, options.fetch),
            engine,
            linkers,
            registry,
            slots: RwLock::new(HashMap::new()),
            pipelines: RwLock::new(Vec::new()),
            connections: Connections::default(),
            generation: 1,
            reloads: Arc::new(Reloads::default()),
        })
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Which registry generation this is: 1, and one more for each
    /// [`Runtime::successor`].
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The process's reload counters, rendered by
    /// [`Runtime::metrics_text`] with the generation.
    pub fn reloads(&self) -> &Reloads {
        &self.reloads
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

    /// Calls function `id`: the one entry point of every surface (the CLI,
    /// HTTP, pipelines, brokers), so that pools, limits, metrics and error
    /// kinds behave the same whichever surface the call came from. See
    /// [`Function::invoke`] for the forms of input and output.
    ///
    /// # Errors
    ///
    /// See [`Error::kind`]: an unknown or refused function, input that does
    /// not fit, a full pool, a trap, an exceeded limit.
    pub async fn invoke(&self, id: &str, input: Input) -> Result<Output> {
        let slot = self.slot(id)?;
        self.callable(id, &slot).await?.invoke(input).await
    }

    /// The function `id`, about to be called: as [`Runtime::function`],
    /// but a function that cannot load counts as a refused call in its
    /// metrics. For a surface that needs the function (its input form, its
    /// parameters) before it calls [`Function::invoke`].
    ///
    /// # Errors
    ///
    /// As [`Runtime::function`].
    pub async fn function_to_call(&self, id: &str) -> Result<Arc<Function>> {
        let slot = self.slot(id)?;
        self.callable(id, &slot).await.cloned()
    }

    /// The loaded function of `slot`, borrowed (a call needs no reference
    /// count of its own); a failed load counts as a refused call.
    async fn callable<'s>(&self, id: &str, slot: &'s Arc<Slot>) -> Result<&'s Arc<Function>> {
        let loaded = self.load_shared(id, slot).await;
        self.loaded(id, slot, loaded)
            .inspect_err(|error| slot.metrics.record_refused(error.kind()))
    }

    /// Calls function `id` with JSON arguments and returns its answer as
    /// JSON ([`Output::into_json`]): the JSON adapter over
    /// [`Runtime::invoke`]. The arguments are taken by value: their strings
    /// move into the guest call instead of being copied.
    ///
    /// # Errors
    ///
    /// As [`Runtime::invoke`].
    pub async fn call(&self, id: &str, args: Vec<Value>) -> Result<Value> {
        self.invoke(id, Input::Json(args))
            .await
            .map(Output::into_json)
    }

    /// The function `id`, loaded on first use off the async workers;
    /// concurrent first callers wait for the same load.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownFunction`], [`Error::NotAFunction`], or
    /// [`Error::Refused`] with every reason the entry cannot load.
    pub async fn function(&self, id: &str) -> Result<Arc<Function>> {
        let slot = self.slot(id)?;
        let loaded = self.load_shared(id, &slot).await;
        self.loaded(id, &slot, loaded).cloned()
    }

    /// The load of `slot`, done once, off the async workers, for every
    /// caller that waits for it.
    async fn load_shared<'s>(&self, id: &str, slot: &'s Slot) -> &'s Loaded {
        slot.loaded
            .get_or_init(|| async { off_worker(|| self.load(id, slot)) })
            .await
    }

    /// [`Runtime::function`] for callers outside async code: it loads on
    /// this thread, or waits for the load an async caller started.
    ///
    /// # Errors
    ///
    /// As [`Runtime::function`].
    pub fn function_blocking(&self, id: &str) -> Result<Arc<Function>> {
        crate::blocking::block_on(self.function(id))
    }

    /// The slot of function `id`, made on first use. Only functions of the
    /// registry (loaded or refused) get one, so neither unknown ids nor
    /// other entries grow the map or the metrics.
    fn slot(&self, id: &str) -> Result<Arc<Slot>> {
        let known = self
            .slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned();
        if let Some(slot) = known {
            return Ok(slot);
        }
        match self.registry.get(id) {
            Some(entry) if entry.function().is_none() => {
                return Err(Error::NotAFunction {
                    id: id.to_string(),
                    kind: entry.kind_name().to_string(),
                });
            }
            None if self.registry.refusal(id).is_none() => {
                return Err(Error::UnknownFunction { id: id.to_string() });
            }
            _ => {}
        }
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        let slot = slots
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Slot::unloaded(Arc::new(FunctionMetrics::new()))));
        Ok(slot.clone())
    }

    /// The outcome of a load. The failed load of a module named by URL is
    /// forgotten, so that a later call tries again.
    fn loaded<'l>(
        &self,
        id: &str,
        slot: &Arc<Slot>,
        loaded: &'l Loaded,
    ) -> Result<&'l Arc<Function>> {
        let problems = match loaded {
            Ok(function) => return Ok(function),
            Err(problems) => problems,
        };
        // A server restarting, a network blip, a deploy half done: what a
        // URL serves may be right a moment later.
        if self.fetched_from_url(id) {
            let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
            if slots.get(id).is_some_and(|known| Arc::ptr_eq(known, slot)) {
                let retry = Slot::unloaded(slot.metrics.clone());
                slots.insert(id.to_string(), Arc::new(retry));
            }
        }
        Err(Error::Refused {
            id: id.to_string(),
            problems: problems.clone(),
        })
    }

    fn fetched_from_url(&self, id: &str) -> bool {
        self.registry
            .get(id)
            .and_then(Entry::function)
            .is_some_and(|function| matches!(function.source, ModuleSource::Url(_)))
    }

    fn load_context<'a>(
        &'a self,
        config: Option<&'a FunctionConfig>,
        sandbox: &'a Sandbox,
        source_field: &'static str,
    ) -> LoadContext<'a> {
        LoadContext {
            compiler: &self.compiler,
            linkers: &self.linkers,
            method: config.and_then(|c| c.method.as_deref()),
            wit: config.and_then(|c| c.wit.as_deref()),
            event_format: config.map(|c| c.event_format).unwrap_or_default(),
            sandbox,
            source_field,
        }
    }

    /// Fields and kinds that are accepted but not active yet: the
    /// registry's own notices, and functions whose `abi` is not active.
    pub fn inactive(&self) -> Vec<Problem> {
        let mut notices = self.registry.inactive().to_vec();
        for entry in self.registry.entries() {
            if let Some(abi) = entry.function().map(|f| f.abi)
                && abi::lookup(abi).is_none()
            {
                notices.push(inactive_abi(entry, abi));
            }
        }
        notices
    }

    /// Loads every function of the registry whose ABI is active, calling
    /// `progress` after each with (done, total). Returns each function's
    /// outcome, by id. It blocks: call it outside async code.
    pub fn load_all(
        &self,
        mut progress: impl FnMut(usize, usize),
    ) -> Vec<(String, Result<Arc<Function>>)> {
        let ids: Vec<String> = self.active_functions().map(|e| e.id.clone()).collect();
        let total = ids.len();
        ids.into_iter()
            .enumerate()
            .map(|(done, id)| {
                let outcome = self.function_blocking(&id);
                progress(done + 1, total);
                (id, outcome)
            })
            .collect()
    }

    /// Loads every function whose ABI is active and creates the instances
    /// their pools keep from the start (`static`, `adaptive` with
    /// `warm_start`). Returns the functions that failed, with why.
    pub async fn warm_up(&self) -> Vec<(String, Error)> {
        let mut failed = Vec::new();
        for entry in self.active_functions() {
            let warmed = match self.function(&entry.id).await {
                Ok(function) => function.warm_up().await.map(drop),
                Err(e) => Err(e),
            };
            if let Err(e) = warmed {
                failed.push((entry.id.clone(), e));
            }
        }
        failed
    }

    /// The function entries whose ABI is active.
    fn active_functions(&self) -> impl Iterator<Item = &Entry> {
        self.registry
            .entries()
            .iter()
            .filter(|e| e.function().is_some_and(|f| abi::lookup(f.abi).is_some()))
    }

    /// Reads, checks and compiles function `id`, whose calls `metrics`
    /// count.
    fn load(&self, id: &str, slot: &Slot) -> Loaded {
        if let Some(problems) = self.registry.refusal(id) {
            return Err(problems.to_vec());
        }
        let Some((entry, config)) = self
            .registry
            .get(id)
            .and_then(|entry| Some((entry, entry.function()?)))
        else {
            unreachable!("slots exist only for registry functions");
        };
        let Some(abi) = abi::lookup(config.abi) else {
            return Err(vec![inactive_abi(entry, config.abi)]);
        };
        let locate = |kind, field: &str, message: String| vec![entry.problem(kind, field, message)];
        let sandbox = self.registry.sandbox(entry).map_err(|p| vec![p])?;
        let bytes = match &config.source {
            ModuleSource::Url(url) => self
                .sources
                .load(url, config.hash)
                .map(|module| module.bytes)
                .map_err(|e| locate(e.problem_kind(), config.source_field(), e.to_string()))?,
            _ => self.registry.module_bytes(entry).map_err(|p| vec![p])?,
        };
        let _ = slot.module.set(Sha256Hash::of(&bytes));
        let started = std::time::Instant::now();
        let cx = self.load_context(Some(config), &sandbox, config.source_field());
        let prepared = prepare(abi, &cx, &bytes, config.limits.compile_limits()).map_err(
            |LoadError {
                 kind,
                 field,
                 message,
             }| locate(kind, field, message),
        )?;
        tracing::debug!(function = id, elapsed = ?started.elapsed(), "Compiled.");
        Ok(Arc::new(Function::new(
            id,
            prepared,
            PoolPolicy::for_function(config),
            config.limits.limits(),
            sandbox,
            self.engine.interrupt(),
            slot.metrics.clone(),
        )))
    }
}

/// `abi`'s load of `module`, once the module is within `limits`: checked
/// first, since compiling is what a hostile module makes slow.
fn prepare(
    abi: &dyn abi::Abi,
    cx: &LoadContext<'_>,
    module: &[u8],
    limits: CompileLimits,
) -> std::result::Result<Box<dyn abi::Prepared>, LoadError> {
    limits.check(module).map_err(|e| LoadError {
        kind: ProblemKind::TooLarge,
        field: e.field,
        message: format!("the module holds {e}"),
    })?;
    abi.load(cx, module)
}

/// The notice (or, when called, the refusal) of a function whose ABI is
/// not active yet.
fn inactive_abi(entry: &Entry, abi: Abi) -> Problem {
    entry.problem(
        ProblemKind::Inactive,
        "abi",
        format!("abi {} is not active yet", abi.as_str()),
    )
}
