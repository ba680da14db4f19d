//! Per-call limits and how they are enforced.
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
//!   fires at the same deadline.
//!
//! The same callback stops every call at once when the engine is
//! interrupted ([`crate::engine::WaferEngine::interrupt_all`], Ctrl-C).
//!
//! A guest stopped either way fails its own call with
//! [`crate::Error::DeadlineExceeded`]; its instance is discarded.

use std::time::{Duration, Instant};

use wasmtime::UpdateDeadline;

use crate::registry::LimitsConfig;

/// `limits.max_execution_ms` when an entry gives none: 10 seconds.
pub const DEFAULT_MAX_EXECUTION_MS: u64 = 10_000;

/// An entry's limits with defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest a call may run.
    pub max_execution: Duration,
}

impl Limits {
    /// Applies the defaults to an entry's `limits:`.
    pub fn from_config(config: &LimitsConfig) -> Limits {
        let ms = config
            .max_execution_ms
            .unwrap_or(DEFAULT_MAX_EXECUTION_MS)
            .max(1);
        Limits {
            max_execution: Duration::from_millis(ms),
        }
    }

    /// `max_execution_ms`, as configured.
    pub fn max_execution_ms(&self) -> u64 {
        self.max_execution.as_millis() as u64
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_config(&LimitsConfig::default())
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
