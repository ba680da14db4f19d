//! What each pool kind means, as numbers: [`PoolPolicy`] from a
//! [`PoolConfig`], with the defaults in one place.

use std::time::Duration;

use crate::registry::{Abi, FunctionConfig, PoolConfig, PoolKind};

pub use crate::registry::DEFAULT_MAX_SIZE;
/// `max_size` of a `lazy` pool.
pub const DEFAULT_LAZY_MAX_SIZE: u32 = 16;
/// `workers` of a `static` pool.
pub const DEFAULT_WORKERS: u32 = 8;
/// Waiting calls allowed per running call when `buffer` is not given.
pub const QUEUE_PER_WORKER: u32 = 64;
/// `idle_timeout_ms` of `lazy` and `adaptive` pools.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 30_000;
/// `min_size` of an `adaptive` pool.
pub const DEFAULT_MIN_SIZE: u32 = 1;

/// A pool's behaviour as numbers, derived from its YAML.
///
/// | kind | runs at once | waits at most | keeps idle | never drops below | instantiated at load |
/// |---|---|---|---|---|---|
/// | `inline` | `max_size` (100) | `buffer` (runs × 64) | 0 | 0 | 0 |
/// | `lazy` | `max_size` (16) | `buffer` (runs × 64) | `max_size` | 0 | 0 |
/// | `static` | `workers` (8) | `buffer` (workers × 64) | `size` (= workers) | `size` | `size` |
/// | `adaptive` | `max_size` (100) | `buffer` (runs × 64) | `max_size` | `min_size` (1) | `min_size` if `warm_start` |
///
/// No `pool:` at all is `lazy` with `max_size` 100 (`inline` for a
/// wasi:http proxy: [`PoolPolicy::for_function`]). Idle instances above
/// the floor are dropped after `idle_timeout_ms` (30 s). A call that finds
/// the queue full fails at once with "pool full".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolPolicy {
    /// The pool kind.
    pub kind: PoolKind,
    /// Calls running at once; each holds one instance.
    pub max_active: usize,
    /// Calls waiting for a free slot; one more is refused as "pool full".
    pub max_waiting: usize,
    /// Most idle instances kept for reuse.
    pub max_idle: usize,
    /// Idle instances kept however long they stay idle.
    pub min_idle: usize,
    /// Idle instances above `min_idle` are dropped after this long.
    pub idle_timeout: Option<Duration>,
    /// Instances created when the function is warmed up.
    pub prewarm: usize,
    /// An instance is recycled after this many calls.
    pub max_calls: Option<u64>,
}

impl PoolPolicy {
    /// The policy of a function entry: its `pool`, or else its ABI's
    /// default. A wasi:http proxy gets a fresh instance per request, as
    /// under `wasmtime serve`; any other function the default pool.
    pub fn for_function(function: &FunctionConfig) -> PoolPolicy {
        match (&function.pool, function.abi) {
            (None, Abi::HttpProxy) => {
                PoolPolicy::from_config(Some(&PoolConfig::of_kind(PoolKind::Inline)))
            }
            (pool, _) => PoolPolicy::from_config(pool.as_ref()),
        }
    }

    /// The policy for `config`, or the default pool when there is none.
    pub fn from_config(config: Option<&PoolConfig>) -> PoolPolicy {
        let default = PoolConfig {
            max_size: Some(DEFAULT_MAX_SIZE),
            ..PoolConfig::of_kind(PoolKind::Lazy)
        };
        let config = config.unwrap_or(&default);
        let n = |v: u32| v.max(1) as usize;
        let queue = |active: usize| {
            config
                .buffer
                .map_or(active * QUEUE_PER_WORKER as usize, |b| b as usize)
        };
        let idle_timeout = Some(Duration::from_millis(
            config.idle_timeout_ms.unwrap_or(DEFAULT_IDLE_TIMEOUT_MS),
        ));
        let max_calls = config.max_calls.filter(|&c| c > 0);
        match config.kind {
            PoolKind::Inline => {
                let active = n(config.max_size.unwrap_or(DEFAULT_MAX_SIZE));
                PoolPolicy {
                    kind: PoolKind::Inline,
                    max_active: active,
                    max_waiting: queue(active),
                    max_idle: 0,
                    min_idle: 0,
                    idle_timeout: None,
                    prewarm: 0,
                    max_calls,
                }
            }
            PoolKind::Lazy => {
                let active = n(config.max_size.unwrap_or(DEFAULT_LAZY_MAX_SIZE));
                PoolPolicy {
                    kind: PoolKind::Lazy,
                    max_active: active,
                    max_waiting: queue(active),
                    max_idle: active,
                    min_idle: 0,
                    idle_timeout,
                    prewarm: 0,
                    max_calls,
                }
            }
            PoolKind::Static => {
                let workers = n(config.workers.unwrap_or(DEFAULT_WORKERS));
                let size = config.size.map_or(workers, |s| s as usize);
                PoolPolicy {
                    kind: PoolKind::Static,
                    max_active: workers,
                    max_waiting: queue(workers),
                    max_idle: size,
                    min_idle: size,
                    idle_timeout: None,
                    prewarm: size,
                    max_calls,
                }
            }
            PoolKind::Adaptive => {
                let active = n(config.max_size.unwrap_or(DEFAULT_MAX_SIZE));
                let floor = (config.min_size.unwrap_or(DEFAULT_MIN_SIZE) as usize).min(active);
                PoolPolicy {
                    kind: PoolKind::Adaptive,
                    max_active: active,
                    max_waiting: queue(active),
                    max_idle: active,
                    min_idle: floor,
                    idle_timeout,
                    prewarm: if config.warm_start.unwrap_or(false) {
                        floor
                    } else {
                        0
                    },
                    max_calls,
                }
            }
        }
    }

    /// Most instances this pool can hold at once (running plus idle).
    pub fn max_instances(&self) -> usize {
        self.max_active.max(self.max_idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> PoolPolicy {
        let config: PoolConfig = serde_norway::from_str(yaml).unwrap();
        PoolPolicy::from_config(Some(&config))
    }

    #[test]
    fn defaults_follow_the_documented_table() {
        let none = PoolPolicy::from_config(None);
        assert_eq!(
            (none.kind, none.max_active, none.max_idle),
            (PoolKind::Lazy, 100, 100)
        );
        let inline = policy("type: inline");
        assert_eq!(
            (inline.max_active, inline.max_waiting, inline.max_idle),
            (100, 6400, 0)
        );
        let lazy = policy("type: lazy");
        assert_eq!(
            (lazy.max_active, lazy.idle_timeout),
            (16, Some(Duration::from_secs(30)))
        );
        let fixed = policy("type: static");
        assert_eq!(
            (
                fixed.max_active,
                fixed.max_waiting,
                fixed.max_idle,
                fixed.min_idle,
                fixed.prewarm
            ),
            (8, 512, 8, 8, 8)
        );
        let adaptive = policy("type: adaptive\nwarm_start: true\nmin_size: 3\nmax_size: 10");
        assert_eq!(
            (adaptive.max_active, adaptive.min_idle, adaptive.prewarm),
            (10, 3, 3)
        );
    }

    #[test]
    fn seed_static_example() {
        let fixed = policy("type: static\nsize: 4\nworkers: 2\nbuffer: 16");
        assert_eq!(
            (
                fixed.max_active,
                fixed.max_waiting,
                fixed.max_idle,
                fixed.max_instances()
            ),
            (2, 16, 4, 4)
        );
    }
}
