//! How often a function's denied requests are logged. Each one is counted
//! in the metrics; the log gets a burst of [`BURST`] lines, then one a
//! second, each saying how many went unlogged since the last: a guest
//! retrying a denied host in a loop cannot flood it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The lines logged at once before the rate applies: 10.
pub const BURST: u32 = 10;

/// One more line may be logged per this much time: 1 s.
pub const EVERY: Duration = Duration::from_secs(1);

/// A token bucket of log lines.
#[derive(Debug)]
pub(crate) struct DenialLog {
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    lines: u32,
    refilled: Instant,
    unlogged: u64,
}

impl DenialLog {
    pub fn new() -> DenialLog {
        DenialLog {
            bucket: Mutex::new(Bucket {
                lines: BURST,
                refilled: Instant::now(),
                unlogged: 0,
            }),
        }
    }

    /// Whether a denial at `now` is logged: with how many went unlogged
    /// before it, or `None` when it is not.
    pub fn line_at(&self, now: Instant) -> Option<u64> {
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let earned = now.saturating_duration_since(bucket.refilled).as_nanos() / EVERY.as_nanos();
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            bucket.lines = bucket.lines.saturating_add(earned).min(BURST);
            bucket.refilled = now;
        }
        if bucket.lines == 0 {
            bucket.unlogged += 1;
            return None;
        }
        bucket.lines -= 1;
        Some(std::mem::take(&mut bucket.unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_line_a_second_each_with_what_went_unlogged() {
        let log = DenialLog::new();
        let start = Instant::now();
        for _ in 0..BURST {
            assert_eq!(log.line_at(start), Some(0));
        }
        for _ in 0..25 {
            assert_eq!(log.line_at(start), None);
        }
        assert_eq!(log.line_at(start + EVERY / 2), None);
        assert_eq!(log.line_at(start + EVERY), Some(26));
        assert_eq!(log.line_at(start + EVERY), None);
        // A quiet while earns the burst back, no more.
        let later = start + EVERY * 100;
        for _ in 0..BURST {
            assert!(log.line_at(later).is_some());
        }
        assert_eq!(log.line_at(later), None);
    }
}
