//! A loaded function: compiled once, instantiated from its `InstancePre`,
//! warm instances kept for the next call.
//!
//! Instances: with `pool.type: inline` every call gets a new instance and
//! nothing is kept; otherwise an instance that finished its call cleanly is
//! kept and reused. An instance whose call trapped, hit a limit or was
//! cancelled is dropped, never reused. (Pool sizing arrives with the
//! worker-pool work.)

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;

use serde_json::Value;
use wasmtime::Store;
use wasmtime::component::Func;

use crate::abi::wit::WitFunction;
use crate::error::{Error, Result};
use crate::host::HostState;
use crate::limits::{DeadlineReached, Limits, on_epoch_tick};
use crate::registry::{FunctionConfig, PoolKind};

/// An instance with its store, ready for a call.
struct Warm {
    store: Store<HostState>,
    func: Func,
}

/// A callable function of the registry.
pub struct Function {
    id: Arc<str>,
    limits: Limits,
    reuse_instances: bool,
    abi: WitFunction,
    idle: Mutex<Vec<Warm>>,
}

impl Function {
    pub(crate) fn new(id: &str, config: &FunctionConfig, abi: WitFunction) -> Function {
        Function {
            id: id.into(),
            limits: Limits::from_config(&config.limits),
            reuse_instances: config.pool.as_ref().is_none_or(|p| p.kind != PoolKind::Inline),
            abi,
            idle: Mutex::new(Vec::new()),
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

    /// The limits calls run under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Calls the function with JSON arguments; the result as JSON.
    ///
    /// Dropping the returned future stops the guest at its next epoch tick
    /// at the latest, and discards its instance.
    ///
    /// # Errors
    ///
    /// Arguments that do not fit the signature, a trap, an exceeded limit, or
    /// a failure to instantiate. A guest `result` error is a successful call.
    pub async fn call_json(&self, args: Vec<Value>) -> Result<Value> {
        let args = self.abi.args(args).map_err(|detail| Error::Arguments { id: self.id.to_string(), detail })?;
        let mut warm = match self.take_idle() {
            Some(warm) => warm,
            None => self.instantiate().await?,
        };
        let deadline = Instant::now() + self.limits.max_execution;
        warm.store.data_mut().deadline = deadline;
        warm.store.set_epoch_deadline(1);
        let outcome = {
            let mut call = std::pin::pin!(self.abi.call(&mut warm.store, warm.func, &args));
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
            Ok(Ok(result)) => {
                if self.reuse_instances {
                    self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(warm);
                }
                Ok(result)
            }
            Ok(Err(e)) => Err(self.call_error(e)),
            Err(_elapsed) => Err(self.deadline_exceeded()),
        }
    }

    fn take_idle(&self) -> Option<Warm> {
        if !self.reuse_instances {
            return None;
        }
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    async fn instantiate(&self) -> Result<Warm> {
        let engine = self.abi.engine();
        let mut store = Store::new(engine, HostState::new(self.id.clone()));
        store.epoch_deadline_callback(|store| on_epoch_tick(store.data().deadline));
        store.data_mut().deadline = Instant::now() + self.limits.max_execution;
        store.set_epoch_deadline(1);
        match self.abi.instantiate(&mut store).await {
            Ok(func) => Ok(Warm { store, func }),
            Err(e) if e.is::<wasmtime::Trap>() || e.is::<DeadlineReached>() => Err(self.call_error(e)),
            Err(e) => Err(Error::Host { id: self.id.to_string(), message: format!("cannot instantiate: {e:#}") }),
        }
    }

    fn deadline_exceeded(&self) -> Error {
        Error::DeadlineExceeded { id: self.id.to_string(), limit_ms: self.limits.max_execution_ms() }
    }

    fn call_error(&self, e: wasmtime::Error) -> Error {
        if e.is::<DeadlineReached>() {
            return self.deadline_exceeded();
        }
        let id = self.id.to_string();
        if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
            tracing::debug!(function = %id, error = ?e, "Guest trapped.");
            return Error::Trap { id, message: trap.to_string() };
        }
        Error::Abi { id, message: format!("{e:#}") }
    }
}
