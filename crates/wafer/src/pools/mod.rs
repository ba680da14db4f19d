//! Worker pools: how many instances a function keeps, how many calls run at
//! once, and how many may wait.
//!
//! Every kind (`inline`, `lazy`, `static`, `adaptive`) is the same
//! mechanism (`pool.rs`) with different numbers ([`PoolPolicy`], which
//! documents each kind and its defaults). Instances come from the
//! function's `InstancePre` on wasmtime's pooling allocator; an instance
//! whose call trapped, hit a limit or was cancelled is dropped, never
//! returned.

mod policy;
mod pool;

pub use policy::*;
pub use pool::PoolStats;
pub(crate) use pool::{InstancePool, LiveToken, QueueFull, Slot};
