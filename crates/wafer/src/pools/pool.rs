//! The one pool mechanism every kind shares: a semaphore bounds the calls
//! running at once, a counter bounds the calls waiting for it, and a list of
//! idle instances is reused newest first and trimmed oldest first.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::policy::PoolPolicy;

/// The queue was full: the call was refused at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueFull {
    pub running: usize,
    pub waiting: usize,
}

/// A snapshot of a pool's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Instances created since the function was loaded.
    pub created: u64,
    /// Instances alive now, running or idle.
    pub live: usize,
    /// Instances idle now.
    pub idle: usize,
    /// Calls running now.
    pub running: usize,
    /// Calls waiting for a slot now.
    pub waiting: usize,
}

struct Idle<W> {
    warm: W,
    calls: u64,
    since: Instant,
}

/// Counts an instance as alive until it is dropped.
pub(crate) struct LiveToken(Arc<AtomicUsize>);

impl Drop for LiveToken {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Instances of one function, and the slots to run them in.
pub(crate) struct InstancePool<W> {
    policy: PoolPolicy,
    slots: Semaphore,
    waiting: AtomicUsize,
    idle: Mutex<Vec<Idle<W>>>,
    created: AtomicU64,
    live: Arc<AtomicUsize>,
}

impl<W> InstancePool<W> {
    pub fn new(policy: PoolPolicy) -> Self {
        InstancePool {
            slots: Semaphore::new(policy.max_active),
            policy,
            waiting: AtomicUsize::new(0),
            idle: Mutex::new(Vec::new()),
            created: AtomicU64::new(0),
            live: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn policy(&self) -> &PoolPolicy {
        &self.policy
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Idle<W>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot to run one call in, waiting in the bounded queue if all are
    /// busy. Dropping the permit frees the slot.
    pub async fn acquire(&self) -> Result<SemaphorePermit<'_>, QueueFull> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(permit);
        }
        let queued = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _leave = Leave(&self.waiting);
        if queued >= self.policy.max_waiting {
            return Err(QueueFull { running: self.policy.max_active, waiting: queued });
        }
        Ok(self.slots.acquire().await.expect("the pool's semaphore is never closed"))
    }

    /// Marks a new instance as alive; keep the token with it.
    pub fn created(&self) -> LiveToken {
        self.created.fetch_add(1, Ordering::Relaxed);
        self.live.fetch_add(1, Ordering::Relaxed);
        LiveToken(self.live.clone())
    }

    /// The most recently used idle instance and its call count.
    pub fn take_idle(&self) -> Option<(W, u64)> {
        self.idle().pop().map(|idle| (idle.warm, idle.calls))
    }

    /// Returns an instance after a clean call. It is dropped instead when
    /// it reached `max_calls` or the pool keeps enough idle instances.
    pub fn give_back(&self, warm: W, calls: u64) {
        if self.policy.max_calls.is_some_and(|max| calls >= max) {
            return;
        }
        let mut idle = self.idle();
        if idle.len() < self.policy.max_idle {
            idle.push(Idle { warm, calls, since: Instant::now() });
        }
    }

    /// Drops idle instances above the floor that have been idle longer than
    /// the timeout; returns how many.
    pub fn trim(&self, now: Instant) -> usize {
        let Some(timeout) = self.policy.idle_timeout else { return 0 };
        let expired: Vec<Idle<W>> = {
            let mut idle = self.idle();
            let removable = idle.len().saturating_sub(self.policy.min_idle);
            // Oldest first: the list is in order of return.
            let stale = idle.iter().take(removable).take_while(|i| now.duration_since(i.since) >= timeout).count();
            idle.drain(..stale).collect()
        };
        // Dropped outside the lock: tearing down a store takes a while.
        expired.len()
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            created: self.created.load(Ordering::Relaxed),
            live: self.live.load(Ordering::Relaxed),
            idle: self.idle().len(),
            running: self.policy.max_active - self.slots.available_permits(),
            waiting: self.waiting.load(Ordering::Relaxed),
        }
    }
}

/// Leaves the queue when a waiting call gets its slot, is refused, or is
/// cancelled.
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
