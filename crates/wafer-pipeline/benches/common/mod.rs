//! What the pipeline benchmarks share: timing a whole pipeline, timing a
//! message ABI through the call path alone, and the line a figure is
//! printed as.

use std::path::Path;
use std::time::{Duration, Instant};

/// The pipeline file at `path` built, then run to the end of its input;
/// how long the run took (building, compiling included, is not counted).
/// Panics unless the output wrote `messages`.
pub fn run_pipeline(
    runtime: &std::sync::Arc<wafer::Runtime>,
    tokio: &tokio::runtime::Runtime,
    path: &Path,
    messages: u64,
) -> Duration {
    let config = wafer_pipeline::config::PipelineConfig::from_file(path).unwrap();
    let pipeline = wafer_pipeline::Pipeline::build(runtime, config).unwrap();
    let started = Instant::now();
    let summary = tokio
        .block_on(pipeline.run(std::future::pending()))
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(summary.processed, messages, "{summary}");
    elapsed
}

/// `messages` copies of `message` through `Function::invoke` of the guest
/// `spec` loads, 512 at a time, no pipeline: the ABI's share.
pub async fn call_path(
    runtime: &wafer::Runtime,
    guest: &str,
    spec: wafer::ModuleSpec,
    message: wafer::Message,
    messages: u64,
) -> Duration {
    let module = std::fs::read(guest).unwrap();
    let function = runtime.load_module("bench/abi", &module, spec).unwrap();
    let started = Instant::now();
    for _ in 0..messages / 512 {
        let batch = vec![message.clone(); 512];
        let output = function
            .invoke(wafer::Input::Messages(batch))
            .await
            .unwrap();
        std::hint::black_box(output);
    }
    started.elapsed()
}

/// One round's figure for `name`: `count` `unit`s (`messages`, `records`)
/// in `elapsed`.
pub fn report(round: usize, name: &str, unit: &str, count: u64, elapsed: Duration) {
    let per_second = count as f64 / elapsed.as_secs_f64();
    let each = elapsed.as_nanos() as f64 / count as f64;
    let one = unit.trim_end_matches('s');
    println!("round {round} {name:>23}: {per_second:>12.0} {unit}/s ({each:.0} ns a {one})");
}
