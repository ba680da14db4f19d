//! Keeping long synchronous work off Tokio's async workers, so that one
//! slow load or one long guest call never delays the other tasks of a
//! server.
//!
//! Two cases:
//!
//! * work known to be long before it starts (compiling a module, a
//!   download) runs through [`off_worker`];
//! * a synchronous guest call (a component without imports, called
//!   directly on the caller's thread because that is three times cheaper
//!   than a fiber) is not known to be long until it is: the epoch
//!   callback advances its [`HandOff`], which hands the worker over once
//!   the call has outlived a full epoch tick. The worker's queue and its
//!   other tasks move to a new worker thread, and this thread finishes the
//!   call as a plain blocking thread. Calls shorter than a tick never pay
//!   for it; longer ones pay one thread hand-over (tens of microseconds).
//!
//! Only a multi-threaded Tokio runtime has workers to hand over: on a
//! current-thread runtime a long synchronous call holds the thread.

use std::sync::mpsc::Receiver;
use std::time::Duration;

use tokio::runtime::{Handle, RuntimeFlavor};

/// Whether this thread may hand its work over with `block_in_place`: it
/// runs inside a multi-threaded runtime (a current-thread runtime has no
/// other worker to hand over to, and `block_in_place` panics there).
fn on_multi_thread_runtime() -> bool {
    Handle::try_current().is_ok_and(|handle| handle.runtime_flavor() == RuntimeFlavor::MultiThread)
}

/// Runs `f`, which may block for a while, without holding an async worker:
/// on a multi-threaded runtime's worker, the worker's other tasks move to
/// another thread first (`tokio::task::block_in_place`); anywhere else it
/// simply runs.
pub(crate) fn off_worker<R>(f: impl FnOnce() -> R) -> R {
    if on_multi_thread_runtime() {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// How long a hand-off waits for the new worker thread to take the core.
const HAND_OFF_WAIT: Duration = Duration::from_millis(10);

/// Epoch ticks a probe has to show that this thread holds no core.
const PROBE_TICKS: u32 = 8;

/// The epoch tick of a synchronous call at which it first tries to hand
/// its worker over: the second, so the call has run a full tick.
const FIRST_TRY_TICK: u32 = 2;

/// Where one synchronous call stands in handing its Tokio worker over;
/// advanced at each of its epoch ticks ([`HandOff::on_tick`]).
///
/// `block_in_place` gives the worker's core (its queue, its other tasks)
/// to a new thread and takes it back when its closure returns, unless the
/// new thread took it first. A marker task spawned into the core's queue
/// runs once a thread holding the core runs it; the closure waits for it
/// (up to [`HAND_OFF_WAIT`]). Another idle worker may steal the marker
/// first, so a probe checks the outcome without blocking: a task spawned
/// while this thread holds a core lands in the core's own slot, which other
/// workers do not take, so it cannot run while this thread runs the guest.
/// A probe that runs within [`PROBE_TICKS`] ticks means the hand-off
/// worked; otherwise the call tries again, at ever longer intervals, so
/// that a call that cannot hand over loses little of its time.
pub(crate) struct HandOff {
    tick: u32,
    state: State,
}

enum State {
    /// The next try is at tick `at`; the one after waits `gap` more.
    Waiting { at: u32, gap: u32 },
    /// A try was made; `probe` runs once this thread holds no core.
    Probing {
        probe: Receiver<()>,
        until: u32,
        gap: u32,
    },
    /// This thread is no worker (or no longer one).
    Done,
}

impl HandOff {
    /// The state of a call that has just started.
    pub fn new() -> HandOff {
        HandOff {
            tick: 0,
            state: State::Waiting {
                at: FIRST_TRY_TICK,
                gap: FIRST_TRY_TICK,
            },
        }
    }

    /// One epoch tick of the call.
    pub fn on_tick(&mut self) {
        self.tick += 1;
        let tick = self.tick;
        self.state = match std::mem::replace(&mut self.state, State::Done) {
            State::Waiting { at, gap } if tick >= at => match try_hand_off() {
                Some(probe) => State::Probing {
                    probe,
                    until: tick + PROBE_TICKS,
                    gap,
                },
                None => State::Done,
            },
            State::Probing { probe, until, gap } => match probe.try_recv() {
                Ok(()) => State::Done,
                Err(_) if tick >= until => State::Waiting {
                    at: tick + gap,
                    gap: gap.saturating_mul(2),
                },
                Err(_) => State::Probing { probe, until, gap },
            },
            other => other,
        };
    }
}

/// Hands this worker's core to a new thread; the probe that tells whether
/// it worked. `None` when this thread is no Tokio worker at all (inside
/// `block_on`, on a current-thread runtime): nothing to hand over.
fn try_hand_off() -> Option<Receiver<()>> {
    let handle = Handle::try_current().ok()?;
    if handle.runtime_flavor() != RuntimeFlavor::MultiThread || tokio::task::try_id().is_none() {
        return None;
    }
    let marker = spawn_signal(&handle);
    tokio::task::block_in_place(|| {
        let _ = marker.recv_timeout(HAND_OFF_WAIT);
    });
    Some(spawn_signal(&handle))
}

/// A task that only signals that it ran.
fn spawn_signal(handle: &Handle) -> Receiver<()> {
    let (ran, signal) = std::sync::mpsc::sync_channel::<()>(1);
    handle.spawn(async move {
        let _ = ran.send(());
    });
    signal
}
