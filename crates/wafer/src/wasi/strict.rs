//! Dapr's `strictSandbox`: a guest world that is the same on every run.
//!
//! As Dapr (wazero) does it: the wall clock starts at a fixed instant
//! ([`STRICT_EPOCH`], 2022-01-01T00:00:00Z) and advances 1 ms per read; the
//! monotonic clock starts at zero and advances 1 ms per read; randomness
//! comes from a generator with a fixed seed; sleeps return at once: a
//! preview 1 guest's `poll_oneoff` reports every subscription ready without
//! waiting ([`add_instant_poll_oneoff`]), and a preview 2 guest's clock
//! subscriptions are ready when made ([`add_instant_clock_subscriptions`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use wasmtime::component::{Linker as ComponentLinker, Resource};
use wasmtime::{Caller, Extern, Linker};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};

use crate::host::HostState;

/// The `wasi:clocks` version wasmtime-wasi 48 links; guests importing an
/// older 0.2 version resolve to it.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Where the strict wall clock starts: 2022-01-01T00:00:00Z, Dapr's.
pub const STRICT_EPOCH: Duration = Duration::from_secs(1_640_995_200);

/// How far a strict clock advances at each read.
const TICK: Duration = Duration::from_millis(1);

/// The seed of the strict random generators.
const SEED: u64 = 42;

/// Makes `builder`'s clocks and randomness deterministic.
pub(crate) fn apply(builder: &mut WasiCtxBuilder) {
    builder
        .wall_clock(SteppingWallClock::default())
        .monotonic_clock(SteppingMonotonicClock::default())
        .secure_random(StdRng::seed_from_u64(SEED))
        .insecure_random(StdRng::seed_from_u64(SEED + 1))
        .insecure_random_seed(u128::from(SEED));
}

/// A wall clock at [`STRICT_EPOCH`] plus 1 ms per earlier read.
#[derive(Default)]
struct SteppingWallClock {
    reads: AtomicU64,
}

impl HostWallClock for SteppingWallClock {
    fn resolution(&self) -> Duration {
        TICK
    }

    fn now(&self) -> Duration {
        let reads = self.reads.fetch_add(1, Ordering::Relaxed);
        STRICT_EPOCH + TICK * u32::try_from(reads).unwrap_or(u32::MAX)
    }
}

/// A monotonic clock at zero plus 1 ms per earlier read, in nanoseconds.
#[derive(Default)]
struct SteppingMonotonicClock {
    reads: AtomicU64,
}

impl HostMonotonicClock for SteppingMonotonicClock {
    fn resolution(&self) -> u64 {
        TICK.as_nanos() as u64
    }

    fn now(&self) -> u64 {
        let reads = self.reads.fetch_add(1, Ordering::Relaxed);
        reads.saturating_mul(TICK.as_nanos() as u64)
    }
}

/// Replaces `subscribe-duration` and `subscribe-instant` of
/// `wasi:clocks/monotonic-clock` in `linker` with pollables that are ready
/// at once, so a strict preview 2 guest's sleeps return immediately.
pub(crate) fn add_instant_clock_subscriptions(
    linker: &mut ComponentLinker<HostState>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", |mut store, (_,): (u64,)| {
        elapsed(store.data_mut())
    })?;
    clock.func_wrap("subscribe-instant", |mut store, (_,): (u64,)| {
        elapsed(store.data_mut())
    })?;
    Ok(())
}

/// A pollable that is always ready.
struct Elapsed;

#[wasmtime_wasi::async_trait]
impl Pollable for Elapsed {
    async fn ready(&mut self) {}
}

fn elapsed(host: &mut HostState) -> wasmtime::Result<(Resource<DynPollable>,)> {
    let table = host.table();
    let ready = table.push(Elapsed)?;
    Ok((subscribe(table, ready)?,))
}

/// `wasi_snapshot_preview1` errno values used below.
const ERRNO_SUCCESS: i32 = 0;
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;

/// Sizes and offsets of preview 1's `subscription` and `event` records.
const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;

/// Replaces `wasi_snapshot_preview1::poll_oneoff` in `linker` (which must
/// allow shadowing) with one that answers at once: every clock
/// subscription has expired and every stream is ready. A strict guest's
/// `sleep` thus returns immediately, as under Dapr.
pub(crate) fn add_instant_poll_oneoff<T: 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "poll_oneoff",
        |mut caller: Caller<'_, T>, subs: i32, events: i32, count: i32, written: i32| -> i32 {
            let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
                return ERRNO_FAULT;
            };
            let memory = memory.data_mut(&mut caller);
            answer_all(
                memory,
                subs as u32,
                events as u32,
                count as u32,
                written as u32,
            )
        },
    )?;
    Ok(())
}

/// Writes one "ready" event per subscription; the errno to return.
fn answer_all(memory: &mut [u8], subs: u32, events: u32, count: u32, written: u32) -> i32 {
    if count == 0 {
        return ERRNO_INVAL;
    }
    let count = count as usize;
    let (subs, events, written) = (subs as usize, events as usize, written as usize);
    let fits = |start: usize, len: usize| {
        start
            .checked_add(len)
            .is_some_and(|end| end <= memory.len())
    };
    if !fits(subs, count * SUBSCRIPTION_SIZE)
        || !fits(events, count * EVENT_SIZE)
        || !fits(written, 4)
    {
        return ERRNO_FAULT;
    }
    for i in 0..count {
        let sub = subs + i * SUBSCRIPTION_SIZE;
        let mut event = [0u8; EVENT_SIZE];
        // userdata (u64), error (u16) = success, type (u8) = the
        // subscription's tag; for fd events nbytes (u64) = 1 byte ready.
        event[..8].copy_from_slice(&memory[sub..sub + 8]);
        let tag = memory[sub + 8];
        event[10] = tag;
        if tag != 0 {
            event[16..24].copy_from_slice(&1u64.to_le_bytes());
        }
        let at = events + i * EVENT_SIZE;
        memory[at..at + EVENT_SIZE].copy_from_slice(&event);
    }
    memory[written..written + 4].copy_from_slice(&(count as u32).to_le_bytes());
    ERRNO_SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_step_one_millisecond_per_read() {
        let wall = SteppingWallClock::default();
        assert_eq!(wall.now(), STRICT_EPOCH);
        assert_eq!(wall.now(), STRICT_EPOCH + TICK);
        let mono = SteppingMonotonicClock::default();
        assert_eq!(mono.now(), 0);
        assert_eq!(mono.now(), 1_000_000);
    }

    #[test]
    fn poll_oneoff_answers_every_subscription_and_checks_bounds() {
        let mut memory = vec![0u8; 256];
        memory[0..8].copy_from_slice(&7u64.to_le_bytes());
        memory[48..56].copy_from_slice(&9u64.to_le_bytes());
        memory[56] = 1; // fd_read
        assert_eq!(answer_all(&mut memory, 0, 100, 2, 200), ERRNO_SUCCESS);
        assert_eq!(&memory[100..108], &7u64.to_le_bytes());
        assert_eq!(memory[110], 0);
        assert_eq!(&memory[132..140], &9u64.to_le_bytes());
        assert_eq!(memory[142], 1);
        assert_eq!(&memory[200..204], &2u32.to_le_bytes());
        assert_eq!(answer_all(&mut memory, 250, 0, 1, 0), ERRNO_FAULT);
        assert_eq!(answer_all(&mut memory, 0, 0, 0, 0), ERRNO_INVAL);
    }
}
