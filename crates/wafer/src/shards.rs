//! Spreading per-call bookkeeping over per-thread shards, so that threads
//! calling at once do not write to the same cache line.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How many shards a sharded structure gets: one per core, at most 64.
pub(crate) fn count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(64)
}

/// This thread's shard among `count`: threads are numbered round-robin at
/// first use.
pub(crate) fn home_shard(count: usize) -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static THREAD: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    THREAD.with(|t| *t) % count
}
