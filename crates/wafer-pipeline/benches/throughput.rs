//! Messages per second through a pipeline, in one run, against the
//! ceiling:
//!
//! * `ceiling`: the louder-style Benthos guest called in a bare loop
//!   through wasmtime (default engine), with the same host functions doing
//!   the same copies and frees as wafer's `benthos` ABI, one instance;
//! * `abi: benthos`: the same guest through wafer's one call path
//!   (`Function::invoke` with batches of 512 messages), no engine;
//! * `wasm, 1 thread` and `wasm, 2 threads`: `generate` (100-byte messages)
//!   → `wasm` (that guest) → `drop`, the whole engine in process;
//! * `no processor`: `generate` → `drop`.
//!
//! Run: `cargo bench -p wafer-pipeline --bench throughput` (figures in
//! BENCHMARKS.md).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Caller, Engine, Extern, Linker, Memory, Module, Store, TypedFunc};

use common::{call_path, report, run_pipeline};

const MESSAGES: u64 = 2_000_000;
const ROUNDS: usize = 3;

fn main() {
    let guest = wafer_guests::BENTHOS_LOUDER;
    let message = "x".repeat(100);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let runtime = Arc::new(wafer::Runtime::new(wafer::Registry::default()).unwrap());
    let dir = tempfile::tempdir().unwrap();
    for round in 1..=ROUNDS {
        let bare = ceiling(guest, message.as_bytes());
        report(round, "ceiling", "messages", MESSAGES, bare);
        let spec = wafer::ModuleSpec {
            abi: wafer::registry::Abi::Benthos,
            method: None,
            event_format: Default::default(),
            sandbox: Default::default(),
            limits: Default::default(),
            pool: wafer::pools::PoolPolicy::from_config(None),
        };
        let one = wafer::Message::new(message.clone().into_bytes());
        let abi = tokio.block_on(call_path(&runtime, guest, spec, one, MESSAGES));
        report(round, "abi: benthos", "messages", MESSAGES, abi);
        for (name, threads, processors) in [
            (
                "wasm, 1 thread",
                1,
                format!("[{{wasm: {{module_path: {guest}}}}}]"),
            ),
            (
                "wasm, 2 threads",
                2,
                format!("[{{wasm: {{module_path: {guest}}}}}]"),
            ),
            ("no processor", 1, "[]".to_string()),
        ] {
            let path = dir.path().join("bench.yaml");
            std::fs::write(
                &path,
                format!(
                    "input:\n  generate: {{mapping: 'root = \"{message}\"', count: {MESSAGES}, interval: \"\"}}\npipeline:\n  threads: {threads}\n  processors: {processors}\noutput:\n  drop: {{}}\n"
                ),
            )
            .unwrap();
            let elapsed = run_pipeline(&runtime, &tokio, &path, MESSAGES);
            report(round, name, "messages", MESSAGES, elapsed);
        }
    }
}

/// The guest's memory, `allocate` and `deallocate`.
type Exports = (Memory, TypedFunc<u32, u32>, TypedFunc<(u32, u32), ()>);

/// What the bare loop's host functions reach.
#[derive(Default)]
struct Bare {
    /// Shared, as wafer shares them: cloning a `TypedFunc` is not free.
    exports: Option<Arc<Exports>>,
    message: Vec<u8>,
    inbound: Vec<(u32, u32)>,
}

/// `MESSAGES` calls of the guest's `process` on one instance.
fn ceiling(guest: &str, message: &[u8]) -> Duration {
    let engine = Engine::default();
    let module = Module::from_file(&engine, guest).unwrap();
    let mut linker = Linker::<Bare>::new(&engine);
    linker
        .func_wrap(
            "benthos_wasm",
            "v0_msg_as_bytes",
            |mut caller: Caller<'_, Bare>| -> wasmtime::Result<i64> {
                let exports = caller.data().exports.clone().unwrap();
                let (memory, allocate, _) = &*exports;
                let bytes = std::mem::take(&mut caller.data_mut().message);
                let len = bytes.len() as u32;
                let ptr = allocate.call(&mut caller, len)?;
                memory.data_mut(&mut caller)[ptr as usize..][..bytes.len()].copy_from_slice(&bytes);
                caller.data_mut().message = bytes;
                caller.data_mut().inbound.push((ptr, len));
                Ok(((u64::from(ptr) << 32) | u64::from(len)) as i64)
            },
        )
        .unwrap();
    linker
        .func_wrap(
            "benthos_wasm",
            "v0_msg_set_bytes",
            |mut caller: Caller<'_, Bare>, ptr: u32, len: u32| -> wasmtime::Result<()> {
                let exports = caller.data().exports.clone().unwrap();
                let (memory, _, deallocate) = &*exports;
                let out = bytes::Bytes::copy_from_slice(
                    &memory.data(&caller)[ptr as usize..][..len as usize],
                );
                std::hint::black_box(out);
                deallocate.call(&mut caller, (ptr, len))
            },
        )
        .unwrap();
    let mut store = Store::new(&engine, Bare::default());
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let Some(Extern::Memory(memory)) = instance.get_export(&mut store, "memory") else {
        panic!("no memory")
    };
    let allocate = instance.get_typed_func(&mut store, "allocate").unwrap();
    let deallocate = instance
        .get_typed_func::<(u32, u32), ()>(&mut store, "deallocate")
        .unwrap();
    let process = instance
        .get_typed_func::<(), ()>(&mut store, "process")
        .unwrap();
    store.data_mut().exports = Some(Arc::new((memory, allocate, deallocate.clone())));
    store.data_mut().message = message.to_vec();
    let started = Instant::now();
    for _ in 0..MESSAGES {
        process.call(&mut store, ()).unwrap();
        while let Some(region) = store.data_mut().inbound.pop() {
            deallocate.call(&mut store, region).unwrap();
        }
    }
    started.elapsed()
}
