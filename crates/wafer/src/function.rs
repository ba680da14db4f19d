//! A loaded function: compiled once, instantiated from its `InstancePre`,
//! its instances managed by its pool ([`crate::pools`]).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use serde_json::Value;
use wasmtime::Store;
use wasmtime::component::types::Type;
use wasmtime::component::{Func, Val};

use crate::abi::wit::WitFunction;
use crate::error::{Error, Result};
use crate::host::HostState;
use crate::limits::{DeadlineReached, InterruptRaised, Limits, on_epoch_tick};
use crate::pools::{InstancePool, LiveToken, PoolPolicy, PoolStats, QueueFull};
use crate::registry::FunctionConfig;

/// An instance with its store, ready for a call.
struct Warm {
    store: Store<HostState>,
    func: Func,
    _live: LiveToken,
}

/// A callable function of the registry.
///
/// Calls go through the function's pool: at most `max_active` run at once,
/// a bounded number wait, and the rest are refused with
/// [`Error::PoolFull`]. Reused instances keep their state between calls
/// (except in `inline` pools, where every call gets a new instance).
///
/// A function whose component imports nothing (a core module, a pure
/// component) runs synchronously on the calling thread: it cannot wait on
/// anything, and a direct call costs a third of one on a fiber. Such a call
/// holds its thread until it returns or reaches `max_execution_ms`; it is
/// stopped by its deadline or [`WaferEngine::interrupt_all`], not by
/// dropping its future. Functions with imports (WASI) run on a fiber and
/// yield at every epoch tick.
///
/// [`WaferEngine::interrupt_all`]: crate::engine::WaferEngine::interrupt_all
pub struct Function {
    id: Arc<str>,
    limits: Limits,
    abi: WitFunction,
    pool: Arc<InstancePool<Warm>>,
    reaper_started: Arc<AtomicBool>,
    interrupted: Arc<AtomicBool>,
}

/// Clears the "reaper running" flag when the reaper task ends.
struct ReaperRunning(Arc<AtomicBool>);

impl Drop for ReaperRunning {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl Function {
    pub(crate) fn new(
        id: &str,
        config: &FunctionConfig,
        abi: WitFunction,
        interrupted: Arc<AtomicBool>,
    ) -> Function {
        Function {
            id: id.into(),
            limits: Limits::from_config(&config.limits),
            abi,
            pool: Arc::new(InstancePool::new(PoolPolicy::from_config(
                config.pool.as_ref(),
            ))),
            reaper_started: Arc::new(AtomicBool::new(false)),
            interrupted,
        }
    }

    /// The function's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The WIT signature: `func(a: s32, b: s32) -> s32`.
    pub fn signature(&self) -> &str {
        self.abi.signature()
    }

    /// The parameters' names and types, for building [`Val`] arguments.
    pub fn params(&self) -> &[(String, Type)] {
        self.abi.params()
    }

    /// The limits calls run under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The pool's sizes.
    pub fn pool_policy(&self) -> &PoolPolicy {
        self.pool.policy()
    }

    /// The pool's counters: instances created and alive, calls running and
    /// waiting.
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// Calls the function with JSON arguments; the result as JSON.
    ///
    /// Dropping the returned future stops the guest at its next epoch tick
    /// at the latest, and discards its instance.
    ///
    /// # Errors
    ///
    /// Arguments that do not fit the signature, a full pool, a trap, an
    /// exceeded limit, or a failure to instantiate. A guest `result` error is
    /// a successful call.
    pub async fn call_json(&self, args: Vec<Value>) -> Result<Value> {
        let args = self.abi.args(args).map_err(|detail| Error::Arguments {
            id: self.id.to_string(),
            detail,
        })?;
        let results = self.call_checked(&args).await?;
        Ok(self.abi.result_json(results))
    }

    /// Calls the function with component values, no JSON involved: the
    /// typed embedding API. The arguments must match [`Function::params`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use wasmtime::component::Val;
    /// let registry = wafer::Registry::from_yaml("inline.yaml", r#"
    /// version: "1.0"
    /// namespace: demo
    /// entries:
    ///   - name: add
    ///     kind: function.wat
    ///     source: '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
    ///     method: add
    /// "#);
    /// let runtime = wafer::Runtime::new(registry)?;
    /// let add = runtime.function("demo:add")?;
    /// let results = add.call_vals(&[Val::S32(2), Val::S32(40)]).await?;
    /// assert_eq!(results, [Val::S32(42)]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Function::call_json`]: arguments that do not match the
    /// parameters are [`Error::Arguments`], checked before any instance is
    /// touched.
    pub async fn call_vals(&self, args: &[Val]) -> Result<Vec<Val>> {
        crate::values::check_args(self.abi.params(), args).map_err(|detail| Error::Arguments {
            id: self.id.to_string(),
            detail,
        })?;
        self.call_checked(args).await
    }

    /// Calls with arguments already known to match the parameters.
    async fn call_checked(&self, args: &[Val]) -> Result<Vec<Val>> {
        // Most calls finish without ever returning `Pending`; spending Tokio's
        // cooperative budget makes a task that calls in a loop yield now and
        // then, so other tasks run and idle workers can take it over.
        tokio::task::consume_budget().await;
        self.start_reaper();
        let _slot = self
            .pool
            .acquire()
            .await
            .map_err(|full| self.pool_full(full))?;
        let (mut warm, calls) = match self.pool.take_idle() {
            Some(idle) => idle,
            None => (self.instantiate().await?, 0),
        };
        let deadline = Instant::now() + self.limits.max_execution;
        warm.store.data_mut().deadline = deadline;
        warm.store.set_epoch_deadline(1);
        let mut results = vec![Val::Bool(false); self.abi.result_count()];
        let outcome = if self.abi.is_sync() {
            Ok(self
                .abi
                .call_sync(&mut warm.store, warm.func, args, &mut results))
        } else {
            let mut call =
                std::pin::pin!(
                    self.abi
                        .call(&mut warm.store, warm.func, args, &mut results)
                );
            // The epoch callback stops running guest code; a timer stops a
            // guest that waits in a host call. Most calls finish on their
            // first poll, so the timer is armed only for those that do not.
            match std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await {
                Poll::Ready(result) => Ok(result),
                Poll::Pending => tokio::time::timeout_at(deadline.into(), call).await,
            }
        };
        warm.store.data().end_call();
        match outcome {
            Ok(Ok(())) => {
                self.pool.give_back(warm, calls + 1);
                Ok(results)
            }
            Ok(Err(e)) => Err(self.call_error(e)),
            Err(_elapsed) => Err(self.deadline_exceeded()),
        }
    }

    /// Creates the instances the pool keeps from the start (`static` pools,
    /// `adaptive` with `warm_start`); returns how many were created.
    ///
    /// # Errors
    ///
    /// When an instance cannot be created.
    pub async fn warm_up(&self) -> Result<usize> {
        let mut created = 0;
        while self.pool.stats().live < self.pool.policy().prewarm {
            let warm = self.instantiate().await?;
            self.pool.give_back(warm, 0);
            created += 1;
        }
        Ok(created)
    }

    async fn instantiate(&self) -> Result<Warm> {
        let engine = self.abi.engine();
        let mut store = Store::new(
            engine,
            HostState::new(self.id.clone(), self.interrupted.clone()),
        );
        let may_yield = !self.abi.is_sync();
        store.epoch_deadline_callback(move |store| {
            let host = store.data();
            on_epoch_tick(host.deadline, host.is_interrupted(), may_yield)
        });
        store.data_mut().deadline = Instant::now() + self.limits.max_execution;
        store.set_epoch_deadline(1);
        match self.abi.instantiate(&mut store).await {
            Ok(func) => Ok(Warm {
                store,
                func,
                _live: self.pool.created(),
            }),
            Err(e) if e.is::<wasmtime::PoolConcurrencyLimitError>() => Err(Error::PoolFull {
                id: self.id.to_string(),
                reason: format!("the engine's instance slots are all in use ({e})"),
            }),
            Err(e) if e.is::<wasmtime::Trap>() || e.is::<DeadlineReached>() => {
                Err(self.call_error(e))
            }
            Err(e) => Err(Error::Host {
                id: self.id.to_string(),
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

    fn pool_full(&self, full: QueueFull) -> Error {
        Error::PoolFull {
            id: self.id.to_string(),
            reason: format!(
                "{} calls running and {} waiting",
                full.running, full.waiting
            ),
        }
    }

    fn deadline_exceeded(&self) -> Error {
        Error::DeadlineExceeded {
            id: self.id.to_string(),
            limit_ms: self.limits.max_execution_ms(),
        }
    }

    fn call_error(&self, e: wasmtime::Error) -> Error {
        if e.is::<DeadlineReached>() {
            return self.deadline_exceeded();
        }
        if e.is::<InterruptRaised>() {
            return Error::Interrupted {
                id: self.id.to_string(),
            };
        }
        let id = self.id.to_string();
        if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
            tracing::debug!(function = %id, error = ?e, "Guest trapped.");
            return Error::Trap {
                id,
                message: trap.to_string(),
            };
        }
        Error::Abi {
            id,
            message: format!("{e:#}"),
        }
    }
}
