//! A loaded function: compiled once, instantiated from its `InstancePre`,
//! called through its pool ([`crate::pools`]).
//!
//! Two shapes share this type: typed functions (`abi: wit`, [`typed`]),
//! whose instances are reused, and WASI programs (`abi: wasi-command`,
//! [`command`]), which get a fresh instance per call.

mod command;
mod typed;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde_json::Value;
use wasmtime::component::Val;
use wasmtime::component::types::Type;

use crate::abi::wasi_command::CommandProgram;
use crate::abi::wit::WitFunction;
use crate::error::{Error, Result};
use crate::limits::{DeadlineReached, InterruptRaised, Limits};
use crate::pools::{PoolPolicy, PoolStats, QueueFull};
use crate::registry::PoolConfig;
use crate::wasi::Sandbox;

pub use command::{CommandInput, CommandOutput};

/// A callable function of the registry.
///
/// Calls go through the function's pool: at most `max_active` run at once,
/// a bounded number wait, and the rest are refused with
/// [`Error::PoolFull`]. Reused instances keep their state between calls
/// (except in `inline` pools, where every call gets a new instance).
///
/// A typed function whose component imports nothing (a core module, a pure
/// component) runs synchronously on the calling thread: it cannot wait on
/// anything, and a direct call costs a third of one on a fiber. Such a call
/// holds its thread until it returns or reaches `max_execution_ms`; it is
/// stopped by its deadline or [`WaferEngine::interrupt_all`], not by
/// dropping its future. Functions with imports (WASI) run on a fiber and
/// yield at every epoch tick.
///
/// A WASI program (`abi: wasi-command`) runs with [`Function::run`]; its
/// JSON form ([`Function::call_json`]) takes string arguments and answers
/// `{"stdout", "stderr", "exit_code"}`.
///
/// [`WaferEngine::interrupt_all`]: crate::engine::WaferEngine::interrupt_all
pub struct Function {
    shared: Shared,
    body: Body,
}

/// What both shapes need at a call.
struct Shared {
    id: Arc<str>,
    limits: Limits,
    sandbox: Sandbox,
    interrupted: Arc<AtomicBool>,
}

enum Body {
    Typed(typed::Typed),
    /// Boxed: its pool's bookkeeping is large and kept inline.
    Command(Box<command::Command>),
}

impl Function {
    pub(crate) fn typed(
        id: &str,
        abi: WitFunction,
        pool: Option<&PoolConfig>,
        limits: Limits,
        sandbox: Sandbox,
        interrupted: Arc<AtomicBool>,
    ) -> Function {
        Function {
            shared: Shared::new(id, limits, sandbox, interrupted),
            body: Body::Typed(typed::Typed::new(abi, PoolPolicy::from_config(pool))),
        }
    }

    pub(crate) fn command(
        id: &str,
        program: CommandProgram,
        pool: Option<&PoolConfig>,
        limits: Limits,
        sandbox: Sandbox,
        interrupted: Arc<AtomicBool>,
    ) -> Function {
        Function {
            shared: Shared::new(id, limits, sandbox, interrupted),
            body: Body::Command(Box::new(command::Command::new(
                program,
                PoolPolicy::from_config(pool),
            ))),
        }
    }

    /// The function's id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Whether this is a WASI program (`abi: wasi-command`).
    pub fn is_command(&self) -> bool {
        matches!(self.body, Body::Command(_))
    }

    /// The WIT signature (`func(a: s32, b: s32) -> s32`), or for a WASI
    /// program `command(args, stdin) -> stdout`.
    pub fn signature(&self) -> &str {
        match &self.body {
            Body::Typed(typed) => typed.abi.signature(),
            Body::Command(_) => "command(args, stdin) -> stdout",
        }
    }

    /// The parameters' names and types, for building [`Val`] arguments;
    /// none for a WASI program.
    pub fn params(&self) -> &[(String, Type)] {
        match &self.body {
            Body::Typed(typed) => typed.abi.params(),
            Body::Command(_) => &[],
        }
    }

    /// The limits calls run under.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// The WASI world the guest sees.
    pub fn sandbox(&self) -> &Sandbox {
        &self.shared.sandbox
    }

    /// The pool's sizes.
    pub fn pool_policy(&self) -> &PoolPolicy {
        match &self.body {
            Body::Typed(typed) => typed.pool.policy(),
            Body::Command(command) => command.pool.policy(),
        }
    }

    /// The pool's counters: instances created and alive, calls running and
    /// waiting.
    pub fn pool_stats(&self) -> PoolStats {
        match &self.body {
            Body::Typed(typed) => typed.pool.stats(),
            Body::Command(command) => command.pool.stats(),
        }
    }

    /// Calls the function with JSON arguments; the result as JSON.
    ///
    /// For a WASI program, each argument is appended to argv (strings as
    /// they are, other values as JSON text), stdin is empty, and the answer
    /// is `{"stdout": …, "stderr": …, "exit_code": 0}` (each stream a
    /// string, or an array of bytes when it is not UTF-8).
    ///
    /// Dropping the returned future stops the guest at its next epoch tick
    /// at the latest, and discards its instance.
    ///
    /// # Errors
    ///
    /// Arguments that do not fit the signature, a full pool, a trap, an
    /// exceeded limit, a failure to instantiate, or a program's non-zero
    /// exit. A guest `result` error is a successful call.
    pub async fn call_json(&self, args: Vec<Value>) -> Result<Value> {
        match &self.body {
            Body::Typed(typed) => typed.call_json(&self.shared, args).await,
            Body::Command(command) => {
                let input = CommandInput::from_json_args(args);
                let output = command.run(&self.shared, input).await?;
                Ok(output.to_json())
            }
        }
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
    /// touched. A WASI program is [`Error::Unsupported`].
    pub async fn call_vals(&self, args: &[Val]) -> Result<Vec<Val>> {
        match &self.body {
            Body::Typed(typed) => typed.call_vals(&self.shared, args).await,
            Body::Command(_) => Err(self.shared.unsupported(
                "is a WASI program (abi: wasi-command): run it with arguments and stdin, not typed values",
            )),
        }
    }

    /// Runs a WASI program to completion with `input`.
    ///
    /// # Errors
    ///
    /// [`Error::Exit`] for a non-zero exit status and
    /// [`Error::OutputLimit`] past `max_output_bytes`, both with what the
    /// program wrote; a trap, another exceeded limit, a missing required
    /// environment variable ([`Error::Sandbox`]), a full pool. A typed
    /// function is [`Error::Unsupported`].
    pub async fn run(&self, input: CommandInput) -> Result<CommandOutput> {
        match &self.body {
            Body::Command(command) => command.run(&self.shared, input).await,
            Body::Typed(_) => Err(self.shared.unsupported(
                "is a typed function (abi: wit): call it with arguments, not as a program",
            )),
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
        match &self.body {
            Body::Typed(typed) => typed.warm_up(&self.shared).await,
            Body::Command(_) => Ok(0),
        }
    }
}

impl Shared {
    fn new(id: &str, limits: Limits, sandbox: Sandbox, interrupted: Arc<AtomicBool>) -> Shared {
        Shared {
            id: id.into(),
            limits,
            sandbox,
            interrupted,
        }
    }

    fn unsupported(&self, message: &str) -> Error {
        Error::Unsupported {
            id: self.id.to_string(),
            message: message.to_string(),
        }
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
            output: None,
        }
    }

    fn interrupted_error(&self) -> Error {
        Error::Interrupted {
            id: self.id.to_string(),
        }
    }

    fn memory_exceeded(&self) -> Error {
        Error::MemoryLimit {
            id: self.id.to_string(),
            limit_bytes: self.limits.max_memory_bytes,
            output: None,
        }
    }

    /// Maps what wasmtime reported for a failed instantiation or call.
    /// `memory_refused`: the memory cap refused a growth during the call,
    /// the likely cause of whatever failed.
    fn call_error(&self, e: wasmtime::Error, memory_refused: bool) -> Error {
        if e.is::<DeadlineReached>() {
            return self.deadline_exceeded();
        }
        if e.is::<InterruptRaised>() {
            return self.interrupted_error();
        }
        if memory_refused {
            return self.memory_exceeded();
        }
        let id = self.id.to_string();
        if e.is::<wasmtime::PoolConcurrencyLimitError>() {
            return Error::PoolFull {
                id,
                reason: format!("the engine's instance slots are all in use ({e})"),
            };
        }
        if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
            tracing::debug!(function = %id, error = ?e, "Guest trapped.");
            return Error::Trap {
                id,
                message: trap.to_string(),
                output: None,
            };
        }
        Error::Abi {
            id,
            message: format!("{e:#}"),
        }
    }
}
