//! Resident memory of 1,000 idle pooled instances of a one-page module:
//! a `static` pool of 1,000 is warmed up, and the process's resident set
//! is read before and after (Linux `/proc/self/statm`).
//!
//! Run: `cargo bench -p wafer --bench idle_memory`

use wafer::{Input, Registry, Runtime};

const INSTANCES: usize = 1000;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn main() {
    let yaml = format!(
        r#"
version: "1.0"
namespace: m
entries:
  - name: one-page
    kind: function.wat
    source: '(module (memory (export "memory") 1) (global $n (mut i32) (i32.const 0)) (func (export "f") (result i32) global.get $n))'
    method: f
    pool:
      type: static
      size: {INSTANCES}
      workers: {INSTANCES}
"#
    );
    let runtime = Runtime::new(Registry::from_yaml("/m.yaml", &yaml)).unwrap();
    let function = runtime.function_blocking("m:one-page").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(function.invoke(Input::Json(vec![]))).unwrap();
    let before = resident_bytes();
    let created = rt.block_on(function.warm_up()).unwrap();
    let after = resident_bytes();
    let stats = function.pool_stats();
    assert_eq!(stats.idle, INSTANCES);
    let growth = after.saturating_sub(before);
    println!(
        "{created} more idle instances ({} alive): resident memory grew {:.1} MiB ({} bytes per instance)",
        stats.live,
        growth as f64 / (1 << 20) as f64,
        growth / created as u64
    );
}
