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
//!   callback calls [`hand_off_worker`] once the call has outlived an
//!   epoch tick. The worker's queue and its other tasks move to a new
//!   worker thread, and this thread finishes the call as a plain blocking
//!   thread. Short calls never pay for it.

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

/// How long [`hand_off_worker`] waits for the new worker thread to start.
const HAND_OFF_WAIT: Duration = Duration::from_millis(100);

/// How long a probe task may take to run before this thread is taken to
/// still hold its worker's core.
const PROBE_WAIT: Duration = Duration::from_millis(2);

/// Called on a thread that is in the middle of a long synchronous call:
/// if it is a Tokio worker, hands the worker's core (its queue, its other
/// tasks) to a new worker thread, so that the rest of the call holds only
/// this thread. Returns whether this thread is no longer a worker (or
/// never was one); the caller tries again later when it is not.
///
/// `block_in_place` gives the core to a new thread and takes it back when
/// its closure returns, unless the new thread took it first. A marker task
/// spawned into the core's queue runs once a thread holding the core runs
/// it, and the closure waits for it. Another idle worker may steal the
/// marker before the new thread starts; a probe tells: a task spawned
/// while this thread holds a core lands in the core's own slot, which no
/// other worker takes, so it cannot run while this thread waits.
pub(crate) fn hand_off_worker() -> bool {
    let Ok(handle) = Handle::try_current() else {
        return true;
    };
    if handle.runtime_flavor() != RuntimeFlavor::MultiThread || tokio::task::try_id().is_none() {
        // `block_on` or a current-thread runtime: no core to hand over.
        return true;
    }
    let marker = spawn_signal(&handle);
    let handed = tokio::task::block_in_place(|| marker.recv_timeout(HAND_OFF_WAIT).is_ok());
    handed && spawn_signal(&handle).recv_timeout(PROBE_WAIT).is_ok()
}

/// A task that only signals that it ran.
fn spawn_signal(handle: &Handle) -> std::sync::mpsc::Receiver<()> {
    let (ran, signal) = std::sync::mpsc::sync_channel::<()>(1);
    handle.spawn(async move {
        let _ = ran.send(());
    });
    signal
}
