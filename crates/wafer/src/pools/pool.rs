//! The one pool mechanism every kind shares: slots bound the calls running
//! at once, a counter bounds the calls waiting for a slot, and a list of
//! idle instances is reused newest first and trimmed oldest first.
//!
//! The hot path shares as little as possible between threads: free slots
//! are counted per thread shard (a thread takes from its own shard and
//! returns there, and looks at the others only when its own is empty; the
//! waiters' `Notify` is touched only when someone waits), and idle
//! instances sit in one list per thread shard, so a thread reuses the
//! instances it ran last (their stores stay in its cache) and takes another
//! shard's only when its own is empty.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{Mutex, MutexGuard};
use tokio::sync::Notify;

use super::policy::PoolPolicy;
use crate::shards::{self, home_shard};

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
    /// Free slots per thread shard, each alone on its cache line: every call
    /// writes its shard's count twice, and two threads calling at once must
    /// not write the same line.
    free_slots: Box<[Padded<AtomicUsize>]>,
    waiting: AtomicUsize,
    slot_freed: Notify,
    shards: Box<[Shard<W>]>,
    created: AtomicU64,
    live: Arc<AtomicUsize>,
}

/// A value alone on its cache line.
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// One thread shard's idle instances, oldest first, on its own cache line.
#[repr(align(128))]
struct Shard<W>(Mutex<Vec<Idle<W>>>);

/// A running call's slot; dropping it frees the slot.
pub(crate) struct Slot<'a, W>(&'a InstancePool<W>);

impl<W> Drop for Slot<'_, W> {
    fn drop(&mut self) {
        let pool = self.0;
        pool.free_slots[home_shard(pool.free_slots.len())].fetch_add(1, Ordering::SeqCst);
        if pool.waiting.load(Ordering::SeqCst) > 0 {
            pool.slot_freed.notify_one();
        }
    }
}

impl<W> InstancePool<W> {
    pub fn new(policy: PoolPolicy) -> Self {
        let shards = shards::count();
        let free_slots = (0..shards)
            .map(|i| {
                let share =
                    policy.max_active / shards + usize::from(i < policy.max_active % shards);
                Padded(AtomicUsize::new(share))
            })
            .collect();
        InstancePool {
            policy,
            free_slots,
            waiting: AtomicUsize::new(0),
            slot_freed: Notify::new(),
            shards: (0..shards).map(|_| Shard(Mutex::new(Vec::new()))).collect(),
            created: AtomicU64::new(0),
            live: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn policy(&self) -> &PoolPolicy {
        &self.policy
    }

    /// Every shard locked, in order (the only order any code locks two).
    fn lock_all(&self) -> Vec<MutexGuard<'_, Vec<Idle<W>>>> {
        self.shards.iter().map(|shard| shard.0.lock()).collect()
    }

    /// A slot to run one call in, if one is free now.
    pub fn try_acquire(&self) -> Option<Slot<'_, W>> {
        let count = self.free_slots.len();
        let home = home_shard(count);
        for shard in (0..count).map(|i| &self.free_slots[(home + i) % count]) {
            let mut free = shard.load(Ordering::SeqCst);
            while free > 0 {
                match shard.compare_exchange_weak(
                    free,
                    free - 1,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                ) {
                    Ok(_) => return Some(Slot(self)),
                    Err(now) => free = now,
                }
            }
        }
        None
    }

    /// A slot to run one call in, waiting in the bounded queue if all are
    /// busy. Dropping the slot frees it.
    pub async fn acquire(&self) -> Result<Slot<'_, W>, QueueFull> {
        if let Some(slot) = self.try_acquire() {
            return Ok(slot);
        }
        let queued = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = Leave(&self.waiting);
        if queued >= self.policy.max_waiting {
            return Err(QueueFull {
                running: self.policy.max_active,
                waiting: queued,
            });
        }
        loop {
            // Registered before looking, so a slot freed in between wakes us.
            let freed = self.slot_freed.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            if let Some(slot) = self.try_acquire() {
                return Ok(slot);
            }
            freed.await;
        }
    }

    /// Marks a new instance as alive; keep the token with it.
    pub fn created(&self) -> LiveToken {
        self.created.fetch_add(1, Ordering::Relaxed);
        self.live.fetch_add(1, Ordering::Relaxed);
        LiveToken(self.live.clone())
    }

    /// The most recently used idle instance of this thread's shard, else
    /// of another, and its call count.
    pub fn take_idle(&self) -> Option<(W, u64)> {
        let home = home_shard(self.shards.len());
        let order = (0..self.shards.len()).map(|i| (home + i) % self.shards.len());
        order
            .into_iter()
            .find_map(|i| self.shards[i].0.lock().pop())
            .map(|idle| (idle.warm, idle.calls))
    }

    /// Returns an instance after a clean call, to this thread's shard. It
    /// is dropped instead when it reached `max_calls` or the pool already
    /// keeps `max_idle` idle instances.
    pub fn give_back(&self, warm: W, calls: u64, now: Instant) {
        if self.policy.max_calls.is_some_and(|max| calls >= max) || self.policy.max_idle == 0 {
            return;
        }
        let idle = Idle {
            warm,
            calls,
            since: now,
        };
        // Idle instances never outnumber live ones, so while the live count
        // is within `max_idle` there is nothing to count.
        if self.live.load(Ordering::Relaxed) <= self.policy.max_idle {
            self.shards[home_shard(self.shards.len())]
                .0
                .lock()
                .push(idle);
            return;
        }
        let mut shards = self.lock_all();
        if shards.iter().map(|s| s.len()).sum::<usize>() < self.policy.max_idle {
            let home = home_shard(shards.len());
            shards[home].push(idle);
        }
    }

    /// Drops idle instances above the floor that have been idle longer than
    /// the timeout; returns how many.
    pub fn trim(&self, now: Instant) -> usize {
        let Some(timeout) = self.policy.idle_timeout else {
            return 0;
        };
        let expired: Vec<Idle<W>> = {
            let mut shards = self.lock_all();
            let total: usize = shards.iter().map(|s| s.len()).sum();
            let mut removable = total.saturating_sub(self.policy.min_idle);
            let mut expired = Vec::new();
            // Oldest first across shards; each shard is in order of return.
            while removable > 0 {
                let oldest = shards
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| s.first().map(|idle| (i, idle.since)))
                    .min_by_key(|&(_, since)| since);
                match oldest {
                    Some((i, since)) if now.duration_since(since) >= timeout => {
                        expired.push(shards[i].remove(0));
                        removable -= 1;
                    }
                    _ => break,
                }
            }
            expired
        };
        // Dropped outside the lock: tearing down a store takes a while.
        expired.len()
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            created: self.created.load(Ordering::Relaxed),
            live: self.live.load(Ordering::Relaxed),
            idle: self.shards.iter().map(|s| s.0.lock().len()).sum(),
            running: self.policy.max_active.saturating_sub(
                self.free_slots
                    .iter()
                    .map(|free| free.load(Ordering::Relaxed))
                    .sum(),
            ),
            waiting: self.waiting.load(Ordering::Relaxed),
        }
    }
}

/// Leaves the queue when a waiting call gets its slot, is refused, or is
/// cancelled.
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::registry::{PoolConfig, PoolKind};

    #[test]
    fn slots_bound_running_calls_whichever_shard_holds_them() {
        let pool = InstancePool::<()>::new(PoolPolicy::from_config(None));
        let max = pool.policy().max_active;
        let slots: Vec<_> = (0..max).map(|_| pool.try_acquire().unwrap()).collect();
        assert!(pool.try_acquire().is_none());
        assert_eq!(pool.stats().running, max);
        drop(slots);
        assert_eq!(pool.stats().running, 0);
        let slots: Vec<_> = (0..max).map(|_| pool.try_acquire().unwrap()).collect();
        assert!(pool.try_acquire().is_none());
        drop(slots);
    }

    #[test]
    fn trimming_drops_the_oldest_idle_instances_down_to_the_floor() {
        let config = PoolConfig {
            kind: PoolKind::Adaptive,
            size: None,
            workers: None,
            buffer: None,
            max_size: Some(3),
            min_size: Some(1),
            idle_timeout_ms: Some(200),
            warm_start: None,
            max_calls: None,
        };
        let pool = InstancePool::new(PoolPolicy::from_config(Some(&config)));
        let _live: Vec<LiveToken> = (0..3).map(|_| pool.created()).collect();
        let now = Instant::now();
        for instance in 1..=3 {
            pool.give_back(instance, 0, now);
        }
        assert_eq!(pool.trim(now), 0, "none idle for the timeout yet");
        let later = now + Duration::from_secs(3600);
        assert_eq!(pool.trim(later), 2);
        assert_eq!(pool.trim(later), 0, "never below min_size");
        assert_eq!(pool.take_idle().map(|(instance, _)| instance), Some(3));
    }
}
