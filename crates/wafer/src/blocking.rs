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

use std::future::Future;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `f`, which may block for a while, without holding an async worker:
/// on a multi-threaded runtime's worker, the worker's other tasks move to
/// another thread first (`tokio::task::block_in_place`); inside a
/// current-thread runtime it runs on a thread of its own (blocking clients
/// refuse to run inside a runtime); outside any runtime it simply runs.
pub(crate) fn off_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|scope| match scope.spawn(f).join() {
            Ok(done) => done,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
        Err(_) => f(),
    }
}

/// Runs `future` to completion on this thread, parking it while the future
/// waits: for callers outside async code. The future must not need a Tokio
/// runtime's timers or I/O.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(done) = future.as_mut().poll(&mut cx) {
            return done;
        }
        std::thread::park();
    }
}

/// How long the first hand-off of a call waits for the new worker thread
/// to take the core; later ones wait [`RETRY_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(10);

/// How long a repeated hand-off waits: it may be one that already worked,
/// whose probe was slow to run on busy workers.
const RETRY_WAIT: Duration = Duration::from_millis(1);

/// Epoch ticks a probe has to show that this thread holds no core.
const PROBE_TICKS: u32 = 8;

/// Epoch ticks between probes once a hand-off has worked.
const RECHECK_TICKS: u32 = 16;

/// Most epoch ticks between two tries while hand-offs keep failing.
const MAX_BACKOFF_TICKS: u32 = 1024;

/// The epoch tick of a synchronous call at which it first tries to hand
/// its worker over: the second, so the call has run a full tick.
const FIRST_TRY_TICK: u32 = 2;

/// Where one synchronous call stands in handing its Tokio worker over;
/// advanced at each of its epoch ticks ([`HandOff::on_tick`]).
///
/// `block_in_place` gives the worker's core (its queue, its other tasks)
/// to a new thread and takes it back when its closure returns, unless the
/// new thread took it first. A marker task spawned into the core's queue
/// runs once a thread holding the core runs it; the closure waits for it.
/// A probe then checks the outcome without blocking: a task spawned while
/// this thread holds a core usually lands in the core's own slot, which
/// other workers do not take, so it cannot run while this thread runs the
/// guest. A probe that runs in time means the hand-off worked; one that
/// does not starts another hand-off, at growing intervals while they keep
/// failing. Because Tokio sometimes queues a new task where other workers
/// can take it (its LIFO slot is off for a moment), a probe can also run
/// while this thread still holds the core: so a call that handed over
/// keeps probing every [`RECHECK_TICKS`] ticks, and hands over again when
/// a probe stays unrun.
pub(crate) struct HandOff {
    tick: u32,
    tries: u32,
    state: State,
}

enum State {
    /// The next try is at tick `at`.
    Waiting { at: u32 },
    /// A probe was spawned; it runs once this thread holds no core.
    Probing { probe: Receiver<()>, until: u32 },
    /// The last probe ran: probe again at tick `at`.
    HandedOver { at: u32 },
    /// This thread is no Tokio worker: nothing to hand over.
    NotAWorker,
}

impl HandOff {
    /// The state of a call that has just started.
    pub fn new() -> HandOff {
        HandOff {
            tick: 0,
            tries: 0,
            state: State::Waiting { at: FIRST_TRY_TICK },
        }
    }

    /// One epoch tick of the call.
    pub fn on_tick(&mut self) {
        self.tick += 1;
        let tick = self.tick;
        self.state = match std::mem::replace(&mut self.state, State::NotAWorker) {
            State::Waiting { at } if tick >= at => {
                let wait = if self.tries == 0 {
                    FIRST_WAIT
                } else {
                    RETRY_WAIT
                };
                self.tries += 1;
                match hand_off(wait) {
                    Some(probe) => State::Probing {
                        probe,
                        until: tick + PROBE_TICKS,
                    },
                    None => State::NotAWorker,
                }
            }
            State::Probing { probe, until } => match probe.try_recv() {
                Ok(()) => State::HandedOver {
                    at: tick + RECHECK_TICKS,
                },
                Err(_) if tick >= until => State::Waiting {
                    at: tick + (PROBE_TICKS << self.tries.min(7)).min(MAX_BACKOFF_TICKS),
                },
                Err(_) => State::Probing { probe, until },
            },
            State::HandedOver { at } if tick >= at => match current_worker_handle() {
                Some(handle) => State::Probing {
                    probe: spawn_signal(&handle),
                    until: tick + PROBE_TICKS,
                },
                None => State::NotAWorker,
            },
            other => other,
        };
    }
}

/// The runtime of this thread, if it is a task on a multi-threaded runtime
/// (inside `block_on` or on a current-thread runtime there is no worker to
/// hand over).
fn current_worker_handle() -> Option<Handle> {
    let handle = Handle::try_current().ok()?;
    (handle.runtime_flavor() == RuntimeFlavor::MultiThread && tokio::task::try_id().is_some())
        .then_some(handle)
}

/// Hands this worker's core to a new thread, waiting up to `wait` for it to
/// be taken; the probe that tells whether it worked. `None` when this
/// thread is no Tokio worker.
fn hand_off(wait: Duration) -> Option<Receiver<()>> {
    let handle = current_worker_handle()?;
    let marker = spawn_signal(&handle);
    tokio::task::block_in_place(|| {
        let _ = marker.recv_timeout(wait);
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
