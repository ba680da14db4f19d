//! Dropping instances idle past their pool's timeout, in the background.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::pools::InstancePool;

/// Whether a function's reaper task runs; it starts at the first call
/// (a call is when a Tokio runtime is at hand). If that runtime shuts
/// down, the next call starts a new reaper.
#[derive(Default)]
pub(super) struct Reaper {
    started: Arc<AtomicBool>,
}

/// Clears the "reaper running" flag when the reaper task ends.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl Reaper {
    /// Starts the reaper of `pool` unless it runs already or the pool
    /// keeps idle instances forever.
    pub fn start<W: Send + 'static>(&self, pool: &Arc<InstancePool<W>>) {
        let Some(timeout) = pool.policy().idle_timeout else {
            return;
        };
        // A plain load first: a swap on every call would be a write every
        // thread makes to one shared cache line.
        if self.started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.started.swap(true, Ordering::Relaxed) {
            return;
        }
        let running = Running(self.started.clone());
        let pool: Weak<InstancePool<W>> = Arc::downgrade(pool);
        let period = (timeout / 4).clamp(Duration::from_millis(5), Duration::from_secs(5));
        handle.spawn(async move {
            let _restart_if_dropped = running;
            let mut ticks = tokio::time::interval(period);
            loop {
                ticks.tick().await;
                let Some(pool) = pool.upgrade() else { break };
                pool.trim(Instant::now());
            }
        });
    }
}
