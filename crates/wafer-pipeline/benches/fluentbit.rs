//! Records per second through Fluent Bit's `wasm` filter:
//!
//! * `guest alone`: `filter_serde` (serde_json parses the record, adds a
//!   field and serialises it) called in a bare wasmtime loop on one
//!   instance, the record copied in and the answer's JSON value measured,
//!   as the ABI does: the ceiling;
//! * `abi: fluentbit`: the same guest through wafer's one call path
//!   (`Function::invoke` with batches of 512 records), no engine;
//! * `json, N threads`: `dummy` (a 200-byte record) → `wasm_filter`
//!   (`filter_serde`, `event_format: json`) → `drop`, the whole engine in
//!   process;
//! * `msgpack, N threads`: the same with `filter_msgpack` (rmpv decodes
//!   the map and encodes it again) and `event_format: msgpack`;
//! * `rust example, 2 threads`: the same with `filter_json`, shaped like
//!   Fluent Bit's `examples/filter_rust` (it serialises the original too),
//!   the filter Fluent Bit's own figure was measured with.
//!
//! Run: `cargo bench -p wafer-pipeline --bench fluentbit` (figures in
//! BENCHMARKS.md).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::IgnoredAny;
use wasmtime::{Engine, Extern, Instance, Module, Store};

use common::{call_path, report, run_pipeline};

const RECORDS: u64 = 409_600;
const ROUNDS: usize = 3;

/// A log record of 200 bytes.
const RECORD: &str = r#"{"message":"GET /api/v1/orders/12345 answered 200 in 12.5 ms","level":"info","service":"checkout","host":"web-01.eu-west","latency_ms":12.5,"status":200,"path":"/api/v1/orders/12345","user":"u-44120"}"#;

fn main() {
    assert_eq!(RECORD.len(), 200);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let runtime = Arc::new(wafer::Runtime::new(wafer::Registry::default()).unwrap());
    let dir = tempfile::tempdir().unwrap();
    for round in 1..=ROUNDS {
        report(round, "guest alone", "records", RECORDS, guest_alone());
        let spec = wafer::ModuleSpec {
            abi: wafer::registry::Abi::Fluentbit,
            method: Some("filter_serde".into()),
            event_format: wafer::registry::EventFormat::Json,
            sandbox: Default::default(),
            limits: Default::default(),
            pool: wafer::pools::PoolPolicy::from_config(None),
        };
        let record = wafer::Message::new(RECORD.as_bytes().to_vec()).with_meta("tag", "dummy.0");
        let guest = wafer_guests::FLUENTBIT_FILTER_SERDE;
        let abi = tokio.block_on(call_path(&runtime, guest, spec, record, RECORDS));
        report(round, "abi: fluentbit", "records", RECORDS, abi);
        for (name, threads, guest, function, format) in [
            (
                "json, 1 thread",
                1,
                wafer_guests::FLUENTBIT_FILTER_SERDE,
                "filter_serde",
                "json",
            ),
            (
                "json, 2 threads",
                2,
                wafer_guests::FLUENTBIT_FILTER_SERDE,
                "filter_serde",
                "json",
            ),
            (
                "msgpack, 1 thread",
                1,
                wafer_guests::FLUENTBIT_FILTER_MSGPACK,
                "filter_msgpack",
                "msgpack",
            ),
            (
                "msgpack, 2 threads",
                2,
                wafer_guests::FLUENTBIT_FILTER_MSGPACK,
                "filter_msgpack",
                "msgpack",
            ),
            (
                "rust example, 2 threads",
                2,
                wafer_guests::FLUENTBIT_FILTER_JSON,
                "filter_json",
                "json",
            ),
        ] {
            let path = dir.path().join("bench.yaml");
            let config = serde_json::json!({
                "input": {"dummy": {
                    "dummy": RECORD,
                    "rate": 2_000_000_000u64,
                    "flush_on_startup": true,
                    "samples": RECORDS,
                }},
                "pipeline": {"threads": threads, "processors": [{"wasm_filter": {
                    "wasm_path": guest,
                    "function_name": function,
                    "event_format": format,
                    "accessible_paths": [],
                }}]},
                "output": {"drop": {}},
            });
            std::fs::write(&path, config.to_string()).unwrap();
            let elapsed = run_pipeline(&runtime, &tokio, &path, RECORDS);
            report(round, name, "records", RECORDS, elapsed);
        }
    }
}

/// `RECORDS` calls of `filter_serde` on one instance, each record copied
/// into pages grown for it and the answer's JSON value measured.
fn guest_alone() -> Duration {
    let engine = Engine::default();
    let module = Module::from_file(&engine, wafer_guests::FLUENTBIT_FILTER_SERDE).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let Some(Extern::Memory(memory)) = instance.get_export(&mut store, "memory") else {
        panic!("no memory")
    };
    let filter = instance
        .get_typed_func::<(u32, u32, u32, u32, u32, u32), u32>(&mut store, "filter_serde")
        .unwrap();
    let scratch = (memory.grow(&mut store, 1).unwrap() * 65536) as u32;
    let tag = b"dummy.0\0";
    let record_at = scratch + tag.len() as u32;
    let started = Instant::now();
    for _ in 0..RECORDS {
        let data = memory.data_mut(&mut store);
        data[scratch as usize..][..tag.len()].copy_from_slice(tag);
        data[record_at as usize..][..RECORD.len()].copy_from_slice(RECORD.as_bytes());
        data[record_at as usize + RECORD.len()] = 0;
        let params = (scratch, 7, 1_700_000_000, 0, record_at, RECORD.len() as u32);
        let answer = filter.call(&mut store, params).unwrap();
        let mut values =
            serde_json::Deserializer::from_slice(&memory.data(&store)[answer as usize..])
                .into_iter::<IgnoredAny>();
        values.next().unwrap().unwrap();
        let end = answer as usize + values.byte_offset();
        std::hint::black_box(bytes::Bytes::copy_from_slice(
            &memory.data(&store)[answer as usize..end],
        ));
    }
    started.elapsed()
}
