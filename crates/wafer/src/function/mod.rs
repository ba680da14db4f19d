//! A loaded function and the one call path every surface goes through.
//!
//! [`Function::invoke`] does, for every ABI and from every surface, the
//! same steps once: take a slot in the function's pool (or be refused at
//! once when its queue is full), reuse an idle instance or create one from
//! the ABI's `InstancePre`, arm the call's deadline, let the ABI move the
//! input in and the output out ([`crate::abi`]), sort whatever failed into
//! an [`Error`] with its kind, give a clean instance back (or drop it), and
//! count the outcome and its latency in the metrics.

mod reaper;

use std::sync::Arc;
use std::time::Instant;

use wasmtime::Store;
use wasmtime::component::types::Type;

use crate::abi::{Answer, Fault, Prepared, Site, Step};
use crate::call::{CommandOutput, Input, InputForm, Output};
use crate::engine::Interrupt;
use crate::error::{Error, Result};
use crate::host::HostState;
use crate::limits::{DeadlineReached, InterruptRaised, Limits, Stopped, bounded};
use crate::metrics::{CallStats, FunctionMetrics, Outcome};
use crate::pools::{InstancePool, LiveToken, PoolPolicy, PoolStats, QueueFull, Slot};
use crate::wasi::Sandbox;
use crate::wasi::outbound_http::OutboundGuard;
use crate::wasi::output::{WriteFailed, Written};

/// A callable function of the registry, whatever its ABI.
///
/// Calls go through the function's pool: at most `max_active` run at once,
/// a bounded number wait, and the rest are refused with
/// [`Error::PoolFull`]. Reused instances keep their state between calls
/// (except in `inline` pools, where every call gets a new instance; a WASI
/// program always gets a new one).
///
/// A function whose component imports nothing (a core module, a pure
/// component) runs synchronously on the calling thread: it cannot wait on
/// anything, and a direct call costs a third of one on a fiber. Should such
/// a call outlive an epoch tick on a worker of a multi-threaded Tokio
/// runtime, the worker's other tasks move to another thread, so a long call
/// never delays other calls (on a current-thread runtime it holds the
/// thread). It is stopped by its deadline or
/// [`WaferEngine::interrupt_all`], not by dropping its future. Functions
/// with imports (WASI) run on a fiber and yield at every epoch tick.
///
/// [`WaferEngine::interrupt_all`]: crate::engine::WaferEngine::interrupt_all
pub struct Function {
    site: Site,
    prepared: Box<dyn Prepared>,
    pool: Arc<InstancePool<Warm>>,
    reaper: reaper::Reaper,
    metrics: Arc<FunctionMetrics>,
}

/// An instance that served a call cleanly, to give back to the pool with
/// the slot it ran in.
struct Reusable<'a> {
    warm: Warm,
    calls: u64,
    slot: Slot<'a, Warm>,
}

/// An instance in its store, ready for a call.
struct Warm {
    store: Store<HostState>,
    _live: LiveToken,
}

impl Function {
    pub(crate) fn new(
        id: &str,
        prepared: Box<dyn Prepared>,
        policy: PoolPolicy,
        limits: Limits,
        sandbox: Sandbox,
        interrupted: Interrupt,
        metrics: Arc<FunctionMetrics>,
    ) -> Function {
        let id: Arc<str> = id.into();
        let outbound = OutboundGuard::new(id.clone(), sandbox.http.clone(), metrics.clone());
        Function {
            site: Site {
                id,
                limits,
                sandbox,
                interrupted,
                outbound: Arc::new(outbound),
            },
            prepared,
            pool: Arc::new(InstancePool::new(policy)),
            reaper: reaper::Reaper::default(),
            metrics,
        }
    }

    /// The function's id.
    pub fn id(&self) -> &str {
        &self.site.id
    }

    /// The signature callers see: `func(a: s32, b: s32) -> s32`, or for a
    /// WASI program `command(args, stdin) -> stdout`.
    pub fn signature(&self) -> &str {
        self.prepared.signature()
    }

    /// The form of input the function's ABI takes.
    pub fn input_form(&self) -> InputForm {
        self.prepared.input_form()
    }

    /// The parameters' names and types, for building [`Input::Vals`]
    /// arguments; none for a WASI program.
    pub fn params(&self) -> &[(String, Type)] {
        self.prepared.params()
    }

    /// The limits calls run under.
    pub fn limits(&self) -> &Limits {
        &self.site.limits
    }

    /// The WASI world the guest sees.
    pub fn sandbox(&self) -> &Sandbox {
        &self.site.sandbox
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

    /// The function's call counters: calls by outcome and their latency
    /// (the figures [`crate::Runtime::metrics_text`] renders).
    pub fn call_stats(&self) -> CallStats {
        self.metrics.snapshot()
    }

    /// Calls the function: the one call path.
    ///
    /// `input` has the form the function's ABI takes, and the answer the
    /// matching form ([`Input`], [`Output`]): JSON or component values for a
    /// typed function, a program's args and stdin for a WASI program,
    /// whose exit status, stdout and stderr come back as data (a non-zero
    /// status is not an error).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use wasmtime::component::Val;
    /// use wafer::{Input, Output};
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
    /// let add = runtime.function("demo:add").await?;
    /// let answer = add.invoke(Input::Vals(vec![Val::S32(2), Val::S32(40)])).await?;
    /// assert_eq!(answer, Output::Vals(vec![Val::S32(42)]));
    /// # Ok(()) }
    /// ```
    ///
    /// Dropping the returned future stops a guest that runs on a fiber at
    /// its next epoch tick at the latest, and discards its instance.
    ///
    /// # Errors
    ///
    /// See [`Error::kind`]: input of the wrong form or arguments that do
    /// not fit ([`Error::Arguments`], checked before the guest runs), a
    /// full pool, a trap, an exceeded limit (with what a program wrote), a
    /// missing required environment variable, a failure to instantiate. A
    /// guest `result` error is a successful call.
    pub async fn invoke(&self, input: Input) -> Result<Output> {
        self.invoke_until(input, None).await
    }

    /// [`Function::invoke`], stopped by `until` too when that comes before
    /// the function's own `limits.max_execution_ms` (a request's deadline,
    /// for instance): the guest is then stopped at its next epoch tick with
    /// [`Error::DeadlineExceeded`], `by_caller` set, whether it runs on a
    /// fiber or on the caller's thread.
    ///
    /// # Errors
    ///
    /// As [`Function::invoke`].
    pub async fn invoke_until(&self, input: Input, until: Option<Instant>) -> Result<Output> {
        // Most calls finish without ever returning `Pending`; spending Tokio's
        // cooperative budget makes a task that calls in a loop yield now and
        // then, so other tasks run and idle workers can take it over.
        tokio::task::consume_budget().await;
        let started = Instant::now();
        let (answer, reusable) = self.call(input, started, until).await;
        // One clock read ends the call: for its latency, and for when its
        // instance went idle.
        let ended = Instant::now();
        let outcome = match &answer {
            Ok(answer) if answer.guest_error => Outcome::GuestError,
            Ok(_) => Outcome::Ok,
            Err(error) => Outcome::Failed(error.kind()),
        };
        self.metrics
            .record(outcome, ended.saturating_duration_since(started));
        if let Some(Reusable { warm, calls, slot }) = reusable {
            self.pool.give_back(warm, calls, ended);
            // The slot goes after the instance, so a caller waiting for it
            // finds the instance idle instead of creating another.
            drop(slot);
        }
        answer.map(|answer| answer.output)
    }

    /// One call; the instance, when it may serve another, with the slot it
    /// holds until it is given back.
    async fn call(
        &self,
        input: Input,
        started: Instant,
        until: Option<Instant>,
    ) -> (Result<Answer>, Option<Reusable<'_>>) {
        let reuses = self.prepared.reuses_instances();
        if reuses {
            self.reaper.start(&self.pool);
        }
        // The time limit counts from when the guest is ready to run: neither
        // a wait in the queue nor instantiating eats into it.
        let mut ready_at = started;
        let slot = match self.pool.try_acquire() {
            Some(slot) => slot,
            None => match self.pool.acquire().await {
                Ok(slot) => {
                    ready_at = Instant::now();
                    slot
                }
                Err(full) => return (Err(self.pool_full(full)), None),
            },
        };
        let (mut warm, calls) = match self.pool.take_idle() {
            Some(idle) => idle,
            None => match self.instantiate().await {
                Ok(warm) => {
                    ready_at = Instant::now();
                    (warm, 0)
                }
                Err(error) => return (Err(error), None),
            },
        };
        let own = self.site.limits.deadline(ready_at);
        let (deadline, by_caller) = match until {
            Some(until) if until < own => (until, true),
            _ => (own, false),
        };
        // A message batch gives each message the whole limit (the ABI
        // renews the deadline the epoch checks); the batch as a whole is
        // bounded by all of them.
        let batch = match (
            self.site.limits.deadline_for(ready_at, input.calls()),
            until,
        ) {
            (own, Some(until)) if until < own => until,
            (own, _) => own,
        };
        warm.store.data_mut().begin_call(deadline, by_caller, until);
        warm.store.set_epoch_deadline(1);
        let called = match self.prepared.invoke(&self.site, &mut warm.store, input) {
            Step::Ready(done) => Ok(done),
            Step::Pending(call) => bounded(call, batch, &self.site.interrupted).await,
        };
        warm.store.data().end_call();
        match called {
            Ok(Ok(answer)) => {
                warm.store.data_mut().memory.reset();
                let reusable = reuses.then_some(Reusable {
                    warm,
                    calls: calls + 1,
                    slot,
                });
                (Ok(answer), reusable)
            }
            Ok(Err(fault)) if fault.left_instance_untouched() => {
                let error = self.error(fault, &mut warm.store);
                let reusable = reuses.then_some(Reusable { warm, calls, slot });
                (Err(error), reusable)
            }
            Ok(Err(fault)) => (Err(self.error(fault, &mut warm.store)), None),
            Err(stopped) => {
                let error = match stopped {
                    Stopped::Deadline => self.deadline_exceeded(until == Some(batch)),
                    Stopped::Interrupted => self.interrupted(),
                };
                (Err(self.with_written(error, &mut warm.store)), None)
            }
        }
    }

    /// Creates the instances the pool keeps from the start (`static` pools,
    /// `adaptive` with `warm_start`); returns how many were created. WASI
    /// programs keep none: each call needs a fresh instance.
    ///
    /// # Errors
    ///
    /// When an instance cannot be created.
    pub async fn warm_up(&self) -> Result<usize> {
        if !self.prepared.reuses_instances() {
            return Ok(0);
        }
        let mut created = 0;
        while self.pool.stats().live < self.pool.policy().prewarm {
            let warm = self.instantiate().await?;
            self.pool.give_back(warm, 0, Instant::now());
            created += 1;
        }
        Ok(created)
    }

    async fn instantiate(&self) -> Result<Warm> {
        let host = HostState::new(&self.site);
        let mut store = host.into_store(self.prepared.engine(), !self.prepared.is_sync());
        let instantiated = match self.prepared.instantiate(&self.site, &mut store) {
            Step::Ready(done) => done,
            Step::Pending(instantiate) => instantiate.await,
        };
        match instantiated {
            Ok(()) => Ok(Warm {
                store,
                _live: self.pool.created(),
            }),
            Err(Fault::Wasm(e)) => {
                Err(self
                    .classify(&e, store.data())
                    .unwrap_or_else(|| Error::Host {
                        id: self.site.id.to_string(),
                        message: format!("cannot instantiate: {e:#}"),
                    }))
            }
            Err(fault) => Err(self.error(fault, &mut store)),
        }
    }

    /// The one place a fault becomes an [`Error`], with what a program
    /// wrote attached. A wasmtime error that is no limit, trap, interrupt
    /// or full pool is the guest breaking the ABI.
    fn error(&self, fault: Fault, store: &mut Store<HostState>) -> Error {
        let id = self.site.id.to_string();
        let e = match fault {
            Fault::Arguments(detail) => return Error::Arguments { id, detail },
            Fault::Sandbox(detail) => return Error::Sandbox { id, detail },
            Fault::WrongInput(message) => return Error::Unsupported { id, message },
            Fault::Wasm(e) => e,
        };
        let written = store.data_mut().take_written();
        let limit_reached = written.as_ref().is_some_and(|w| w.exceeded);
        let e = match e.downcast::<WriteFailed>() {
            Ok(WriteFailed::Host(source)) => return Error::Write { id, source },
            Ok(WriteFailed::Limit(_)) => None,
            Err(e) if !limit_reached => Some(e),
            Err(_) => None,
        };
        let Some(e) = e else {
            return Error::OutputLimit {
                id,
                limit_bytes: self.site.limits.max_output_bytes,
                output: Box::new(program_output(written.unwrap_or_default())),
            };
        };
        let error = self
            .classify(&e, store.data())
            .unwrap_or_else(|| Error::Abi {
                id,
                message: format!("{e:#}"),
            });
        match written {
            Some(written) => error.with_output(program_output(written)),
            None => error,
        }
    }

    /// Sorts what wasmtime reported into a limit, an interrupt, a full
    /// pool or a trap; `None` for anything else.
    fn classify(&self, e: &wasmtime::Error, host: &HostState) -> Option<Error> {
        let id = self.site.id.to_string();
        Some(if e.is::<DeadlineReached>() {
            self.deadline_exceeded(host.deadline_by_caller())
        } else if e.is::<InterruptRaised>() {
            self.interrupted()
        } else if host.memory.was_refused() {
            // The cap refused a growth: the likely cause of whatever failed.
            Error::MemoryLimit {
                id,
                limit_bytes: self.site.limits.max_memory_bytes,
                output: None,
            }
        } else if e.is::<wasmtime::PoolConcurrencyLimitError>() {
            Error::PoolFull {
                id,
                reason: format!("the engine's instance slots are all in use ({e})"),
            }
        } else if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
            tracing::debug!(function = %id, error = ?e, "Guest trapped.");
            Error::Trap {
                id,
                message: trap.to_string(),
                output: None,
            }
        } else {
            return None;
        })
    }

    /// `error` with what a program wrote before it was stopped.
    fn with_written(&self, error: Error, store: &mut Store<HostState>) -> Error {
        match store.data_mut().take_written() {
            Some(written) => error.with_output(program_output(written)),
            None => error,
        }
    }

    fn pool_full(&self, full: QueueFull) -> Error {
        Error::PoolFull {
            id: self.site.id.to_string(),
            reason: format!(
                "{} calls running and {} waiting",
                full.running, full.waiting
            ),
        }
    }

    fn deadline_exceeded(&self, by_caller: bool) -> Error {
        Error::DeadlineExceeded {
            id: self.site.id.to_string(),
            limit_ms: self.site.limits.max_execution_ms(),
            by_caller,
            output: None,
        }
    }

    fn interrupted(&self) -> Error {
        Error::Interrupted {
            id: self.site.id.to_string(),
        }
    }
}

/// What a program wrote, as the output of a run that did not finish.
fn program_output(written: Written) -> CommandOutput {
    CommandOutput {
        stdout: written.stdout,
        stderr: written.stderr,
        exit_code: 1,
    }
}
