//! The cost of a typed call through the JSON path, next to a raw wasmtime
//! call of the same guest function (the guest's own work plus wasmtime's
//! canonical ABI), so the difference is what wafer adds on the host side.
//!
//! Run: `cargo bench -p wafer --bench call` (figures in BENCHMARKS.md).

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use wafer::{Input, Registry, Runtime, Sha256Hash};
use wasmtime::component::{Component, Func, Linker, ResourceTable, Val};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

const ADD_WAT: &str = r#"(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"#;

fn registry() -> Registry {
    let types = wafer_guests::P2_TYPES;
    let dir = std::path::Path::new(types).parent().unwrap();
    let hash = Sha256Hash::of(&std::fs::read(types).expect("guests are built"));
    let file = std::path::Path::new(types)
        .file_name()
        .unwrap()
        .to_string_lossy();
    let yaml = format!(
        r#"
version: "1.0"
namespace: b
entries:
  - name: wat-add
    kind: function.wat
    source: '{ADD_WAT}'
    wit: "add: func(a: s32, b: s32) -> s32;"
    method: add
  - name: guests
    kind: fs.directory
    directory: {dir:?}
  - name: p2-add
    kind: function.wasm
    fs: guests
    path: {file}
    hash: {hash}
    method: add
  - name: p2-echo-user
    kind: function.wasm
    fs: guests
    path: {file}
    hash: {hash}
    method: types#echo-user
"#
    );
    let registry = Registry::from_yaml("/bench.yaml", &yaml);
    assert!(registry.problems().is_empty(), "{:?}", registry.problems());
    registry
}

/// A user record whose JSON is about 1 KiB.
fn user_1kib() -> Value {
    let tags: Vec<String> = (0..16)
        .map(|i| format!("tag-{i:02}-{}", "x".repeat(24)))
        .collect();
    let user = json!({"id": 123456789, "name": "n".repeat(470), "tags": tags, "email": "someone@example.org", "active": true});
    assert!(
        (1000..1100).contains(&user.to_string().len()),
        "{}",
        user.to_string().len()
    );
    user
}

/// Store data for the raw calls: WASI linked (the Rust component imports
/// it), never used by the benchmarked functions.
struct Host {
    table: ResourceTable,
    wasi: WasiCtx,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A raw wasmtime component call: no registry, no JSON, arguments built once.
fn raw_func(
    rt: &tokio::runtime::Runtime,
    engine: &Engine,
    bytes: &[u8],
    path: &[&str],
) -> (Store<Host>, Func) {
    let component = Component::new(engine, bytes).unwrap();
    let mut linker: Linker<Host> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    let mut store = Store::new(
        engine,
        Host {
            table: ResourceTable::new(),
            wasi: WasiCtx::builder().build(),
        },
    );
    store.set_epoch_deadline(u64::MAX / 2);
    let pre = linker.instantiate_pre(&component).unwrap();
    let instance = rt.block_on(pre.instantiate_async(&mut store)).unwrap();
    let mut index = None;
    for name in path {
        index = Some(component.get_export_index(index.as_ref(), name).unwrap());
    }
    let func = instance.get_func(&mut store, index.unwrap()).unwrap();
    (store, func)
}

fn bench_calls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = Runtime::new(registry()).unwrap();
    let add_args = vec![json!(2), json!(40)];
    let user_args = vec![user_1kib()];
    for id in ["b:wat-add", "b:p2-add", "b:p2-echo-user"] {
        runtime.function_blocking(id).unwrap();
    }

    let mut group = c.benchmark_group("json-call");
    group.bench_function("wat add(s32, s32)", |b| {
        b.iter_batched(
            || add_args.clone(),
            |args| rt.block_on(runtime.call("b:wat-add", args)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("p2 add(s32, s32)", |b| {
        b.iter_batched(
            || add_args.clone(),
            |args| rt.block_on(runtime.call("b:p2-add", args)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("p2 echo-user(1 KiB record)", |b| {
        b.iter_batched(
            || user_args.clone(),
            |args| rt.block_on(runtime.call("b:p2-echo-user", args)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("val-call");
    // What every iteration of the groups above pays to drive the future.
    group.bench_function("harness: block_on(ready)", |b| {
        b.iter(|| rt.block_on(std::future::ready(1)))
    });
    for id in ["b:wat-add", "b:p2-add"] {
        let function = runtime.function_blocking(id).unwrap();
        let name = if id == "b:wat-add" {
            "wat add (sync path)"
        } else {
            "p2 add (async path, imports WASI)"
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                let args = Input::Vals(vec![Val::S32(2), Val::S32(40)]);
                rt.block_on(function.invoke(args)).unwrap()
            })
        });
    }
    group.finish();

    let mut config = Config::new();
    config.epoch_interruption(true);
    let engine = Engine::new(&config).unwrap();
    let p2 = std::fs::read(wafer_guests::P2_TYPES).unwrap();
    let mut group = c.benchmark_group("raw-wasmtime-call");
    {
        let (mut store, func) = raw_func(&rt, &engine, &p2, &["add"]);
        let args = [Val::S32(2), Val::S32(40)];
        let mut results = [Val::Bool(false)];
        group.bench_function("p2 add(s32, s32)", |b| {
            b.iter(|| {
                rt.block_on(func.call_async(&mut store, &args, &mut results))
                    .unwrap()
            })
        });
    }
    {
        let (mut store, func) =
            raw_func(&rt, &engine, &p2, &["wafer:test/types@0.1.0", "echo-user"]);
        let params: Vec<(String, _)> = func
            .ty(&store)
            .params()
            .map(|(n, t)| (n.to_string(), t))
            .collect();
        let args = wafer::values::args_from_json(&params, user_args.clone()).unwrap();
        let mut results = [Val::Bool(false)];
        group.bench_function("p2 echo-user(1 KiB record)", |b| {
            b.iter(|| {
                rt.block_on(func.call_async(&mut store, &args, &mut results))
                    .unwrap()
            })
        });
        group.finish();

        let mut mapping = c.benchmark_group("json-mapping");
        mapping.bench_function("1 KiB record: JSON -> Val -> JSON", |b| {
            b.iter_batched(
                || user_args.clone(),
                |args| {
                    let mut vals = wafer::values::args_from_json(&params, args).unwrap();
                    wafer::values::into_json(vals.pop().unwrap())
                },
                BatchSize::SmallInput,
            )
        });
        mapping.finish();
    }
}

criterion_group!(benches, bench_calls);
criterion_main!(benches);
