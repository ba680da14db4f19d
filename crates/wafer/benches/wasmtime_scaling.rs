//! How wasmtime itself scales across threads, without wafer: each thread
//! has its own store and instance of one component and calls `add` in a
//! loop, synchronously or with `call_async`. The figures explain wafer's own
//! scaling (BENCHMARKS.md).
//!
//! Run: `cargo bench -p wafer --bench wasmtime_scaling -- MODE THREADS [epoch]`
//! with MODE `sync` or `async`.

use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker, Val};
use wasmtime::{Config, Engine, Store};

fn main() {
    let wat = r#"(component
      (core module $m (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
      (core instance $i (instantiate $m))
      (func (export "add") (param "a" s32) (param "b" s32) (result s32) (canon lift (core func $i "add"))))"#;
    // `cargo bench` passes `--bench`; the other arguments are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mode = args.first().cloned().unwrap_or("async".into());
    let threads: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(1);
    let epoch = args.get(2).is_some_and(|a| a == "epoch");
    let mut config = Config::new();
    config.epoch_interruption(epoch);
    let engine = Engine::new(&config).unwrap();
    let component = Component::new(&engine, wat).unwrap();
    let linker: Linker<()> = Linker::new(&engine);
    let pre = linker.instantiate_pre(&component).unwrap();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (engine, pre, mode) = (engine.clone(), pre.clone(), mode.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let mut store = Store::new(&engine, ());
                store.set_epoch_deadline(u64::MAX / 2);
                let instance = rt.block_on(pre.instantiate_async(&mut store)).unwrap();
                let func = instance.get_func(&mut store, "add").unwrap();
                let args = [Val::S32(1), Val::S32(2)];
                let mut results = [Val::Bool(false)];
                let end = Instant::now() + Duration::from_secs(2);
                let mut n = 0u64;
                while Instant::now() < end {
                    for _ in 0..1000 {
                        if mode == "sync" {
                            func.call(&mut store, &args, &mut results).unwrap();
                        } else {
                            rt.block_on(func.call_async(&mut store, &args, &mut results))
                                .unwrap();
                        }
                    }
                    n += 1000;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    println!(
        "{mode} threads={threads} epoch={epoch}: {:.0} calls/s",
        total as f64 / 2.0
    );
}
