//! WASI programs (`abi: wasi-command`): executions per second of a minimal
//! program (1 KiB from stdin to stdout) at concurrency 1 and 2, and how far
//! past `max_execution_ms` an endless loop runs before it is stopped.
//!
//! Run: `cargo bench -p wafer --bench commands` (figures in BENCHMARKS.md).

use std::sync::Arc;
use std::time::{Duration, Instant};

use wafer::{CommandInput, Input, Registry, Runtime, Sha256Hash};

const RUN_FOR: Duration = Duration::from_secs(3);

fn entry(name: &str, fs: &str, path: &str, extra: &str) -> String {
    let bytes = std::fs::read(path).expect("guests are built");
    let file = std::path::Path::new(path)
        .file_name()
        .unwrap()
        .to_string_lossy();
    format!(
        "  - name: {name}\n    kind: function.wasm\n    fs: {fs}\n    path: {file}\n    hash: {}\n    abi: wasi-command\n{extra}",
        Sha256Hash::of(&bytes)
    )
}

fn runtime() -> Runtime {
    let dir = |p: &str| {
        std::path::Path::new(p)
            .parent()
            .unwrap()
            .display()
            .to_string()
    };
    let p1 = wafer_guests::P1_ECHO;
    let p2 = wafer_guests::P2_ECHO;
    let loose = "    pool:\n      type: lazy\n      max_size: 8\n";
    let yaml = format!(
        "version: \"1.0\"\nnamespace: b\nentries:\n  - name: p1\n    kind: fs.directory\n    directory: {:?}\n  - name: p2\n    kind: fs.directory\n    directory: {:?}\n{}{}{}{}",
        dir(p1),
        dir(p2),
        entry("p1-echo", "p1", p1, loose),
        entry("p2-echo", "p2", p2, loose),
        entry(
            "p1-loop",
            "p1",
            wafer_guests::P1_LOOP_FOREVER,
            "    limits:\n      max_execution_ms: 50\n"
        ),
        entry(
            "p2-loop",
            "p2",
            wafer_guests::P2_LOOP_FOREVER,
            "    limits:\n      max_execution_ms: 50\n"
        ),
    );
    let registry = Registry::from_yaml("/bench.yaml", &yaml);
    assert!(registry.problems().is_empty(), "{:?}", registry.problems());
    Runtime::new(registry).unwrap()
}

/// Runs `id` with 1 KiB of stdin from `concurrency` tasks for [`RUN_FOR`];
/// returns executions per second and the median latency.
fn throughput(
    tokio: &tokio::runtime::Runtime,
    runtime: &Arc<Runtime>,
    id: &str,
    concurrency: usize,
) -> (f64, Duration) {
    let input: bytes::Bytes = vec![b'x'; 1024].into();
    let function = runtime.function_blocking(id).unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let function = function.clone();
            let input = input.clone();
            tokio.spawn(async move {
                let mut latencies = Vec::new();
                while started.elapsed() < RUN_FOR {
                    let began = Instant::now();
                    let out = function
                        .invoke(Input::Program(CommandInput::new().stdin(input.clone())))
                        .await
                        .unwrap()
                        .into_program()
                        .unwrap();
                    latencies.push(began.elapsed());
                    assert_eq!(out.stdout.len(), 1024);
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = tasks
        .into_iter()
        .flat_map(|t| tokio.block_on(t).unwrap())
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    (
        latencies.len() as f64 / elapsed,
        latencies[latencies.len() / 2],
    )
}

/// Runs the 50 ms endless loop `runs` times; how long past its limit each
/// run went, sorted.
fn overshoot(
    tokio: &tokio::runtime::Runtime,
    runtime: &Runtime,
    id: &str,
    runs: usize,
) -> Vec<Duration> {
    let function = runtime.function_blocking(id).unwrap();
    let limit = Duration::from_millis(50);
    let mut over: Vec<Duration> = (0..runs)
        .map(|_| {
            let began = Instant::now();
            let err = tokio
                .block_on(function.invoke(Input::Program(CommandInput::new())))
                .unwrap_err();
            assert!(
                matches!(err, wafer::Error::DeadlineExceeded { .. }),
                "{err}"
            );
            began.elapsed().saturating_sub(limit)
        })
        .collect();
    over.sort();
    over
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test` run only checks
    // that this builds.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let runtime = Arc::new(runtime());
    for id in ["b:p1-echo", "b:p2-echo"] {
        // Warm up: compile, touch the pool's slots.
        throughput(&tokio, &runtime, id, 1);
        let (one, p50_one) = throughput(&tokio, &runtime, id, 1);
        let (two, p50_two) = throughput(&tokio, &runtime, id, 2);
        println!(
            "{id} echo 1 KiB: c=1 {one:.0}/s (p50 {p50_one:.1?}), c=2 {two:.0}/s (p50 {p50_two:.1?}), scaling {:.2}x",
            two / one
        );
    }
    for id in ["b:p1-loop", "b:p2-loop"] {
        let over = overshoot(&tokio, &runtime, id, 40);
        println!(
            "{id} endless loop, limit 50 ms: stopped p50 {:.2?} / p90 {:.2?} / max {:.2?} past the limit",
            over[over.len() / 2],
            over[over.len() * 9 / 10],
            over[over.len() - 1]
        );
    }
}
