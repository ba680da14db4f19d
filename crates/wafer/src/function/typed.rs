//! Typed calls (`abi: wit`) on pooled, reused instances.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use serde_json::Value;
use wasmtime::Store;
use wasmtime::component::{Func, Val};

use super::Shared;
use crate::abi::wit::WitFunction;
use crate::error::{Error, Result};
use crate::host::HostState;
use crate::limits::{Stopped, bounded};
use crate::pools::{InstancePool, LiveToken, PoolPolicy};
use crate::wasi::Stdin;

/// An instance with its store, ready for a call.
pub(super) struct Warm {
    store: Store<HostState>,
    func: Func,
    _live: LiveToken,
}

/// A typed function and its pool of instances.
pub(super) struct Typed {
    pub abi: WitFunction,
    pub pool: Arc<InstancePool<Warm>>,
    reaper_started: Arc<AtomicBool>,
}

/// Clears the "reaper running" flag when the reaper task ends.
struct ReaperRunning(Arc<AtomicBool>);

impl Drop for ReaperRunning {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl Typed {
    pub fn new(abi: WitFunction, policy: PoolPolicy) -> Typed {
        Typed {
            abi,
            pool: Arc::new(InstancePool::new(policy)),
            reaper_started: Arc::new(AtomicBool::new(false)),
        }
    }

    pub async fn call_json(&self, shared: &Shared, args: Vec<Value>) -> Result<Value> {
        let args = self.abi.args(args).map_err(|detail| Error::Arguments {
            id: shared.id.to_string(),
            detail,
        })?;
        let results = self.call_checked(shared, &args).await?;
        Ok(self.abi.result_json(results))
    }

    pub async fn call_vals(&self, shared: &Shared, args: &[Val]) -> Result<Vec<Val>> {
        crate::values::check_args(self.abi.params(), args).map_err(|detail| Error::Arguments {
            id: shared.id.to_string(),
            detail,
        })?;
        self.call_checked(shared, args).await
    }

    /// Calls with arguments already known to match the parameters.
    async fn call_checked(&self, shared: &Shared, args: &[Val]) -> Result<Vec<Val>> {
        // Most calls finish without ever returning `Pending`; spending Tokio's
        // cooperative budget makes a task that calls in a loop yield now and
        // then, so other tasks run and idle workers can take it over.
        tokio::task::consume_budget().await;
        self.start_reaper();
        let _slot = self
            .pool
            .acquire()
            .await
            .map_err(|full| shared.pool_full(full))?;
        let (mut warm, calls) = match self.pool.take_idle() {
            Some(idle) => idle,
            None => (self.instantiate(shared).await?, 0),
        };
        let deadline = Instant::now() + shared.limits.max_execution;
        warm.store.data_mut().deadline = deadline;
        warm.store.set_epoch_deadline(1);
        let mut results = vec![Val::Bool(false); self.abi.result_count()];
        let outcome = if self.abi.is_sync() {
            Ok(self
                .abi
                .call_sync(&mut warm.store, warm.func, args, &mut results))
        } else {
            let call = self
                .abi
                .call(&mut warm.store, warm.func, args, &mut results);
            bounded(call, deadline, &shared.interrupted).await
        };
        warm.store.data().end_call();
        match outcome {
            Ok(Ok(())) => {
                warm.store.data_mut().memory.reset();
                self.pool.give_back(warm, calls + 1);
                Ok(results)
            }
            Ok(Err(e)) => Err(shared.call_error(e, warm.store.data().memory.was_refused())),
            Err(Stopped::Deadline) => Err(shared.deadline_exceeded()),
            Err(Stopped::Interrupted) => Err(shared.interrupted_error()),
        }
    }

    pub async fn warm_up(&self, shared: &Shared) -> Result<usize> {
        let mut created = 0;
        while self.pool.stats().live < self.pool.policy().prewarm {
            let warm = self.instantiate(shared).await?;
            self.pool.give_back(warm, 0);
            created += 1;
        }
        Ok(created)
    }

    async fn instantiate(&self, shared: &Shared) -> Result<Warm> {
        let mut host = HostState::new(
            shared.id.clone(),
            shared.interrupted.clone(),
            &shared.limits,
        );
        // An empty sandbox gets its context on first use (most typed
        // functions never touch WASI); one that grants something is set up
        // now, so that a missing required variable fails this call.
        if !shared.sandbox.is_empty() {
            let (stdout, stderr) = host.log_streams();
            let mut builder = shared
                .sandbox
                .builder(&[], &Stdin::Bytes(Default::default()), stdout, stderr)
                .map_err(|detail| Error::Sandbox {
                    id: shared.id.to_string(),
                    detail,
                })?;
            host.set_wasi(&mut builder);
        }
        let mut store = host.into_store(self.abi.engine(), !self.abi.is_sync());
        match self.abi.instantiate(&mut store).await {
            Ok(func) => Ok(Warm {
                store,
                func,
                _live: self.pool.created(),
            }),
            Err(e)
                if e.is::<wasmtime::PoolConcurrencyLimitError>()
                    || e.is::<wasmtime::Trap>()
                    || store.data().memory.was_refused() =>
            {
                Err(shared.call_error(e, store.data().memory.was_refused()))
            }
            Err(e) if e.is::<crate::limits::DeadlineReached>() => Err(shared.call_error(e, false)),
            Err(e) => Err(Error::Host {
                id: shared.id.to_string(),
                message: format!("cannot instantiate: {e:#}"),
            }),
        }
    }

    /// Drops instances idle past the pool's timeout, in the background,
    /// from the first call on (a call is when a Tokio runtime is at hand).
    /// If that runtime shuts down, the next call starts a new reaper.
    fn start_reaper(&self) {
        let Some(timeout) = self.pool.policy().idle_timeout else {
            return;
        };
        // A plain load first: a swap on every call would be a write every
        // thread makes to one shared cache line.
        if self.reaper_started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.reaper_started.swap(true, Ordering::Relaxed) {
            return;
        }
        let started = ReaperRunning(self.reaper_started.clone());
        let pool: Weak<InstancePool<Warm>> = Arc::downgrade(&self.pool);
        let period = (timeout / 4).clamp(Duration::from_millis(5), Duration::from_secs(5));
        handle.spawn(async move {
            let _restart_if_dropped = started;
            let mut ticks = tokio::time::interval(period);
            loop {
                ticks.tick().await;
                let Some(pool) = pool.upgrade() else { break };
                pool.trim(Instant::now());
            }
        });
    }
}
