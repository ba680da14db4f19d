//! The one wasmtime [`Engine`] of a process.
//!
//! Everything that shapes compiled code is fixed here and does not depend on
//! the registry: memory reservation and guard sizes, epoch interruption, the
//! component model. So code compiled once stays valid while the registry
//! changes; only instance counts ([`EngineSettings::max_instances`]) may be
//! sized from it.
//!
//! Instances come from wasmtime's pooling allocator (slots reserved up
//! front, copy-on-write memory images) when the host's address space allows
//! it, and from the on-demand allocator otherwise; [`WaferEngine::allocator`]
//! says which and why.
//!
//! A ticker thread advances the engine's epoch every [`EPOCH_TICK`]; a
//! running guest checks its deadline at each tick (see [`crate::limits`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::EngineError;
use crate::pools::PoolPolicy;
use crate::registry::Registry;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the resolution of `max_execution_ms`.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Virtual address space reserved for each linear memory: 4 GiB, so that
/// 32-bit memories need no bounds checks.
pub const MEMORY_RESERVATION: u64 = 4 << 30;

/// Guard region after each linear memory.
pub const MEMORY_GUARD: u64 = 32 << 20;

/// Bytes of each freed linear memory slot kept resident and reset with
/// memset: a Rust program's 1 MiB stack and a small heap.
pub const KEEP_RESIDENT_MEMORY: usize = 2 << 20;

/// Bytes of each freed table slot kept resident and reset with memset.
pub const KEEP_RESIDENT_TABLE: usize = 64 << 10;

/// Settings that may vary between processes without invalidating compiled
/// code.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Most component instances alive at once across all functions (the
    /// pooling allocator's slot count). Default 1000.
    pub max_instances: u32,
}

/// Fewest instance slots an engine gets.
pub const MIN_INSTANCE_SLOTS: u32 = 100;
pub use crate::registry::MAX_INSTANCE_SLOTS;

impl EngineSettings {
    /// Slots for every function's pool at its fullest, between
    /// [`MIN_INSTANCE_SLOTS`] and [`MAX_INSTANCE_SLOTS`].
    pub fn for_registry(registry: &Registry) -> EngineSettings {
        let wanted: usize = registry
            .entries()
            .iter()
            .filter_map(|entry| entry.function())
            .map(|function| PoolPolicy::for_function(function).max_instances())
            .sum();
        let slots = u32::try_from(wanted)
            .unwrap_or(u32::MAX)
            .clamp(MIN_INSTANCE_SLOTS, MAX_INSTANCE_SLOTS);
        EngineSettings {
            max_instances: slots,
        }
    }

    /// [`EngineSettings::for_registry`] with room to grow, twice the slots
    /// (within [`MAX_INSTANCE_SLOTS`]), for a process whose registry may
    /// be reloaded: a reload that adds functions then shares the engine,
    /// and what it compiled, instead of needing an engine of its own
    /// (see [`crate::Runtime::successor`]).
    pub fn for_reloads(registry: &Registry) -> EngineSettings {
        let settings = EngineSettings::for_registry(registry);
        EngineSettings {
            max_instances: settings
                .max_instances
                .saturating_mul(2)
                .min(MAX_INSTANCE_SLOTS),
        }
    }
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_instances: 1000,
        }
    }
}

/// Which instance allocator the engine uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocator {
    /// wasmtime's pooling allocator with this many instance slots.
    Pooling {
        /// Component instance slots.
        slots: u32,
    },
    /// The on-demand allocator, and why pooling was not possible.
    OnDemand {
        /// Why the pooling allocator could not be set up.
        reason: String,
    },
}

/// The process's engine, with its epoch ticker running.
#[derive(Clone)]
pub struct WaferEngine {
    engine: Engine,
    allocator: Allocator,
    interrupted: Interrupt,
}

/// The stop every call of an engine obeys (Ctrl-C, shutdown): raised once,
/// never lowered. Guest code that runs sees it at its next epoch tick; a
/// call waiting on the host is woken by it, with no polling.
#[derive(Clone, Default)]
pub(crate) struct Interrupt(Arc<InterruptState>);

/// What an [`Interrupt`]'s clones share.
#[derive(Default)]
struct InterruptState {
    /// Set once raised; read by every epoch callback.
    raised: AtomicBool,
    /// The calls waiting on the host, woken when it is raised.
    waiters: Notify,
}

impl Interrupt {
    /// Raises the interrupt and wakes every call waiting in
    /// [`Interrupt::raised`].
    pub fn raise(&self) {
        self.0.raised.store(true, Ordering::Release);
        self.0.waiters.notify_waiters();
    }

    /// Whether the interrupt was raised.
    pub fn is_raised(&self) -> bool {
        self.0.raised.load(Ordering::Acquire)
    }

    /// Resolves once the interrupt is raised.
    pub async fn raised(&self) {
        // Made before the flag is read: a raise in between still wakes it.
        let notified = self.0.waiters.notified();
        if !self.is_raised() {
            notified.await;
        }
    }
}

impl WaferEngine {
    /// Builds the engine and starts its epoch ticker.
    ///
    /// # Errors
    ///
    /// When wasmtime cannot build an engine even with the on-demand
    /// allocator (an unsupported host).
    pub fn new(settings: &EngineSettings) -> Result<WaferEngine, EngineError> {
        let (engine, allocator) = match Engine::new(&config(Some(settings))) {
            Ok(engine) => (
                engine,
                Allocator::Pooling {
                    slots: settings.max_instances,
                },
            ),
            Err(e) => {
                let reason = format!("{e:#}");
                (Engine::new(&config(None))?, Allocator::OnDemand { reason })
            }
        };
        match &allocator {
            Allocator::Pooling { slots } => {
                tracing::info!(slots, "Using the pooling instance allocator.")
            }
            Allocator::OnDemand { reason } => {
                tracing::warn!(%reason, "Pooling allocator unavailable; allocating instances on demand.")
            }
        }
        start_epoch_ticker(&engine).map_err(|e| EngineError {
            message: format!("cannot start the epoch ticker: {e}"),
        })?;
        Ok(WaferEngine {
            engine,
            allocator,
            interrupted: Interrupt::default(),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Which allocator is in use.
    pub fn allocator(&self) -> &Allocator {
        &self.allocator
    }

    /// Stops every running call at its next epoch tick, and every later
    /// one at its first, with [`crate::Error::Interrupted`]: for Ctrl-C and
    /// shutdown. It cannot be undone.
    pub fn interrupt_all(&self) {
        self.interrupted.raise();
    }

    /// This engine, stopped by `other`'s [`WaferEngine::interrupt_all`]
    /// too (and `other` by its): a reload's new engine, so that a stop
    /// reaches the guests of every generation.
    pub fn interrupted_with(mut self, other: &WaferEngine) -> WaferEngine {
        self.interrupted = other.interrupted.clone();
        self
    }

    /// What [`WaferEngine::interrupt_all`] raises, as calls obey it.
    pub(crate) fn interrupt(&self) -> Interrupt {
        self.interrupted.clone()
    }
}

fn config(pooling: Option<&EngineSettings>) -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .parallel_compilation(true)
        .memory_reservation(MEMORY_RESERVATION)
        .memory_guard_size(MEMORY_GUARD)
        .memory_init_cow(true);
    if let Some(settings) = pooling {
        let slots = settings.max_instances;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            // A Rust wasm32-wasip2 component instantiates several core
            // modules (its code plus adapter shims).
            .total_core_instances(slots.saturating_mul(4))
            .total_memories(slots)
            .total_tables(slots.saturating_mul(2))
            .total_stacks(slots)
            .max_memory_size(MEMORY_RESERVATION as usize)
            // Reset a freed slot's dirty pages with memset, found with
            // Linux's PAGEMAP_SCAN, instead of madvise: an madvise in a
            // multithreaded process flushes the TLB of every other core
            // (IPIs), which kept fresh-instance-per-call functions from
            // scaling across cores (BENCHMARKS.md, issue 3).
            .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_TABLE)
            .pagemap_scan(Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Advances the epoch every [`EPOCH_TICK`] until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wafer-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
    Ok(())
}
