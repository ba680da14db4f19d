//! Per-call limits and how they are enforced, and the limits a module
//! must stay within to be compiled at all ([`CompileLimits`]).
//!
//! `max_execution_ms` is enforced two ways, so that neither a busy guest
//! nor a waiting one outlives it:
//!
//! * while guest code runs, at every epoch tick ([`crate::engine::EPOCH_TICK`],
//!   1 ms) a callback compares the clock with the call's deadline and traps
//!   past it; before the deadline, an async call yields to the executor so
//!   other tasks on the thread get their turn (a synchronous call, see
//!   [`crate::Function`], just goes on);
//! * while the guest waits in a host call, a timer around the whole call
//!   fires at the same deadline (`bounded`); a message batch, whose
//!   messages each get the whole limit, has a timer per message in its ABI
//!   and one around the batch at the sum of the limits.
//!
//! The same two paths stop every call when the engine is interrupted
//! ([`crate::engine::WaferEngine::interrupt_all`], Ctrl-C).
//!
//! A guest stopped either way fails its own call with
//! [`crate::Error::DeadlineExceeded`]; its instance is discarded.

use std::future::Future;
use std::task::Poll;
use std::time::{Duration, Instant};

use wasmtime::UpdateDeadline;

use crate::engine::Interrupt;

/// `limits.max_execution_ms` when an entry gives none: 10 seconds.
pub const DEFAULT_MAX_EXECUTION_MS: u64 = 10_000;

/// `limits.max_memory_bytes` when an entry gives none: 256 MiB of linear
/// memory per instance, enough for language runtimes (Python, Ruby) built
/// for WASI.
pub const DEFAULT_MAX_MEMORY_BYTES: u64 = 256 << 20;

/// `limits.max_output_bytes` when an entry gives none: 16 MiB of stdout and
/// stderr together per call of a WASI program.
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 16 << 20;

/// An entry's limits with defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest a call may run.
    pub max_execution: Duration,
    /// The most linear memory one instance may grow to, all its memories
    /// together.
    pub max_memory_bytes: u64,
    /// The most bytes a WASI program's call may write to stdout and stderr
    /// together; what comes after fails the call.
    pub max_output_bytes: u64,
}

impl Limits {
    /// Limits from an entry's values, each `None` taking its default; a
    /// time limit of 0 counts as 1 ms.
    pub fn with_defaults(
        max_execution_ms: Option<u64>,
        max_memory_bytes: Option<u64>,
        max_output_bytes: Option<u64>,
    ) -> Limits {
        let ms = max_execution_ms.unwrap_or(DEFAULT_MAX_EXECUTION_MS).max(1);
        Limits {
            max_execution: Duration::from_millis(ms),
            max_memory_bytes: max_memory_bytes.unwrap_or(DEFAULT_MAX_MEMORY_BYTES),
            max_output_bytes: max_output_bytes.unwrap_or(DEFAULT_MAX_OUTPUT_BYTES),
        }
    }

    /// When a call that may start running at `ready` must stop.
    pub fn deadline(&self, ready: Instant) -> Instant {
        self.deadline_for(ready, 1)
    }

    /// When `calls` calls in a row, each allowed the whole limit, must all
    /// have ended: the outer bound of a message batch, whose messages
    /// each get the limit.
    pub fn deadline_for(&self, ready: Instant, calls: u32) -> Instant {
        // A limit past what the clock can represent is no limit.
        self.max_execution
            .checked_mul(calls.max(1))
            .and_then(|total| ready.checked_add(total))
            .unwrap_or_else(|| ready + Duration::from_secs(u32::MAX.into()))
    }

    /// `max_execution_ms`, as configured.
    pub fn max_execution_ms(&self) -> u64 {
        self.max_execution.as_millis() as u64
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::with_defaults(None, None, None)
    }
}

/// Refuses linear memory growth past [`Limits::max_memory_bytes`], and
/// remembers that it did, so that the guest's failure (a trap, an abort
/// after a failed allocation) is reported as the limit it hit.
pub(crate) struct MemoryCap {
    max_bytes: usize,
    used_bytes: usize,
    /// The growth last allowed, undone if wasmtime then fails it.
    last_growth: Option<(usize, usize)>,
    refused: bool,
}

/// Most elements a table may grow to (a funcref is 8 bytes of host memory).
pub const MAX_TABLE_ELEMENTS: usize = 1_000_000;

impl MemoryCap {
    pub fn new(max_bytes: u64) -> Self {
        MemoryCap {
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            used_bytes: 0,
            last_growth: None,
            refused: false,
        }
    }

    /// Whether a growth was refused since the last [`MemoryCap::reset`].
    pub fn was_refused(&self) -> bool {
        self.refused
    }

    /// Forgets a refusal; memory already held stays counted.
    pub fn reset(&mut self) {
        self.refused = false;
    }
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Several memories of one instance (a component's adapter has its
        // own) share the cap.
        let others = self.used_bytes.saturating_sub(current);
        if others.saturating_add(desired) > self.max_bytes {
            self.refused = true;
            return Ok(false);
        }
        self.used_bytes = others + desired;
        self.last_growth = Some((current, desired));
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // Allowed here but refused by wasmtime (past the memory's own
        // maximum): the memory kept its old size.
        if let Some((current, desired)) = self.last_growth.take() {
            self.used_bytes = self.used_bytes.saturating_sub(desired - current);
        }
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables live outside linear memory; without a cap a guest could
        // grow one toward 2^32 entries of host memory.
        if desired > MAX_TABLE_ELEMENTS {
            self.refused = true;
            return Ok(false);
        }
        Ok(true)
    }
}

/// The error an epoch callback raises when a call's deadline has passed.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("deadline exceeded")]
pub(crate) struct DeadlineReached;

/// The error an epoch callback raises when the engine was interrupted.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("interrupted")]
pub(crate) struct InterruptRaised;

/// What the epoch callback does at a tick: trap once the engine is
/// interrupted or the call's deadline has passed, else carry on (yielding
/// first when the call is async).
pub(crate) fn on_epoch_tick(
    deadline: Instant,
    interrupted: bool,
    may_yield: bool,
) -> wasmtime::Result<UpdateDeadline> {
    if interrupted {
        Err(InterruptRaised.into())
    } else if Instant::now() >= deadline {
        Err(DeadlineReached.into())
    } else if may_yield {
        Ok(UpdateDeadline::Yield(1))
    } else {
        Ok(UpdateDeadline::Continue(1))
    }
}

/// `limits.max_functions` when an entry gives none: 75,000 functions in a
/// module (all core modules of a component together); language runtimes
/// built for WASI (CPython, SpiderMonkey) define a few tens of thousands.
pub const DEFAULT_MAX_FUNCTIONS: u64 = 75_000;

/// `limits.max_function_bytes` when an entry gives none: 1 MiB of code in
/// one function body; the largest bodies of interpreters are a few hundred
/// KiB.
pub const DEFAULT_MAX_FUNCTION_BYTES: u64 = 1 << 20;

/// What a module may hold, checked in one pass over its sections before
/// anything compiles it: compiling time grows with these, so one hostile
/// module cannot stall a server's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileLimits {
    /// The module's size in bytes (`limits.max_module_bytes`, default
    /// [`crate::files::MAX_MODULE_BYTES`]).
    pub max_module_bytes: u64,
    /// Functions defined, over all its core modules (`limits.max_functions`).
    pub max_functions: u64,
    /// The size of one function body (`limits.max_function_bytes`).
    pub max_function_bytes: u64,
}

impl Default for CompileLimits {
    fn default() -> Self {
        CompileLimits {
            max_module_bytes: crate::files::MAX_MODULE_BYTES,
            max_functions: DEFAULT_MAX_FUNCTIONS,
            max_function_bytes: DEFAULT_MAX_FUNCTION_BYTES,
        }
    }
}

/// A module past one of its [`CompileLimits`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}, more than {field} = {limit}")]
pub struct CompileLimitExceeded {
    /// The registry field that refused it: `limits.max_functions`.
    pub field: &'static str,
    /// What the module holds: `100000 functions`.
    pub what: String,
    /// The limit.
    pub limit: u64,
}

impl CompileLimits {
    /// Checks `bytes` (a core module or a component) against the limits. A
    /// module that does not parse passes: compiling it reports why.
    ///
    /// # Errors
    ///
    /// The first limit the module exceeds.
    pub fn check(&self, bytes: &[u8]) -> Result<(), CompileLimitExceeded> {
        let exceeded = |field, what: String, limit| CompileLimitExceeded { field, what, limit };
        if bytes.len() as u64 > self.max_module_bytes {
            let what = format!("a module of {} bytes", bytes.len());
            return Err(exceeded(
                "limits.max_module_bytes",
                what,
                self.max_module_bytes,
            ));
        }
        let mut functions: u64 = 0;
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            match payload {
                Ok(wasmparser::Payload::CodeSectionStart { count, .. }) => {
                    functions += u64::from(count);
                    if functions > self.max_functions {
                        let what = format!("{functions} functions");
                        return Err(exceeded("limits.max_functions", what, self.max_functions));
                    }
                }
                Ok(wasmparser::Payload::CodeSectionEntry(body)) => {
                    let size = body.range().len() as u64;
                    if size > self.max_function_bytes {
                        let what = format!("a function body of {size} bytes");
                        return Err(exceeded(
                            "limits.max_function_bytes",
                            what,
                            self.max_function_bytes,
                        ));
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Ok(())
    }
}

/// Why [`bounded`] stopped a call that was waiting on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// The call's deadline passed.
    Deadline,
    /// The engine was interrupted.
    Interrupted,
}

/// Runs a guest call to its end, unless it waits in a host call (a sleep,
/// a read) past `deadline` or while the engine is `interrupted`: the epoch
/// callback sees neither while no guest code runs. Most calls finish on
/// their first poll, so the timers are armed only for those that do not.
pub(crate) async fn bounded<T>(
    call: impl Future<Output = T>,
    deadline: Instant,
    interrupted: &Interrupt,
) -> Result<T, Stopped> {
    let mut call = std::pin::pin!(call);
    if let Poll::Ready(done) = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await
    {
        return Ok(done);
    }
    tokio::select! {
        done = tokio::time::timeout_at(deadline.into(), call) => done.map_err(|_| Stopped::Deadline),
        () = interrupted.raised() => Err(Stopped::Interrupted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module_with(functions: usize, body_bytes: usize) -> Vec<u8> {
        let body = "i32.const 0 drop ".repeat(body_bytes / 3);
        let funcs = (0..functions)
            .map(|_| format!("(func {body})"))
            .collect::<String>();
        wat::parse_str(format!("(module {funcs})")).unwrap()
    }

    #[test]
    fn each_limit_refuses_what_exceeds_it() {
        let limits = CompileLimits {
            max_module_bytes: 100_000,
            max_functions: 10,
            max_function_bytes: 1000,
        };
        assert_eq!(limits.check(&module_with(10, 900)), Ok(()));
        let error = limits.check(&module_with(11, 10)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "11 functions, more than limits.max_functions = 10"
        );
        let error = limits.check(&module_with(1, 2000)).unwrap_err();
        assert_eq!(error.field, "limits.max_function_bytes");
        let error = limits.check(&module_with(10, 20_000)).unwrap_err();
        assert_eq!(error.field, "limits.max_module_bytes");
    }

    #[test]
    fn functions_of_every_core_module_in_a_component_count() {
        let component =
            wat::parse_str("(component (core module (func) (func)) (core module (func) (func)))")
                .unwrap();
        let limits = CompileLimits {
            max_functions: 3,
            ..CompileLimits::default()
        };
        assert_eq!(limits.check(&component).unwrap_err().what, "4 functions");
    }
}
