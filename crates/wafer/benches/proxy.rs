//! The cost of one request through a wasi:http proxy component on the call
//! path, without any HTTP server around it: the hello-world guest
//! (`wafer_guests::HTTP_HELLO`) answering a GET, its body read to the end,
//! with its instance reused (a pool) and fresh (an `inline` pool, the
//! default). What `wafer run` adds per request is the rest of the figure
//! of `crates/wafer-http/benches/proxy/run.sh`.
//!
//! Run: `cargo bench -p wafer --bench proxy` (figures in BENCHMARKS.md).

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty};
use wafer::proxy::HttpCall;
use wafer::{Function, Input, Registry, Runtime, Sha256Hash};

fn registry() -> Registry {
    let hello = std::path::Path::new(wafer_guests::HTTP_HELLO);
    let dir = hello.parent().unwrap();
    let file = hello.file_name().unwrap().to_string_lossy();
    let hash = Sha256Hash::of(&std::fs::read(hello).expect("guests are built"));
    let yaml = format!(
        r#"
version: "1.0"
namespace: b
entries:
  - {{ name: guests, kind: fs.directory, directory: {dir:?} }}
  - {{ name: fresh, kind: function.wasm, fs: guests, path: {file}, hash: {hash} }}
  - name: reused
    kind: function.wasm
    fs: guests
    path: {file}
    hash: {hash}
    pool: {{ type: lazy, max_size: 1, max_calls: 1000000000 }}
"#
    );
    let registry = Registry::from_yaml("/bench.yaml", &yaml);
    assert!(registry.problems().is_empty(), "{:?}", registry.problems());
    registry
}

/// One GET through `function`, its body read whole (after the call: hello's
/// body fits the channel it is written into, so the call never waits for
/// a reader).
async fn get(function: &Function) -> Bytes {
    let request = http::Request::get("/")
        .header(http::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let (call, response) = HttpCall::new(request, false);
    function.invoke(Input::Http(call)).await.unwrap();
    let response = response.await.unwrap().unwrap();
    response.into_body().collect().await.unwrap().to_bytes()
}

fn bench_proxy(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = Runtime::new(registry()).unwrap();
    let mut group = c.benchmark_group("proxy-call");
    for name in ["reused", "fresh"] {
        let function = runtime.function_blocking(&format!("b:{name}")).unwrap();
        assert_eq!(rt.block_on(get(&function)), "Hello, world!\n");
        group.bench_function(format!("hello, instance {name}"), |b| {
            b.iter(|| rt.block_on(get(&function)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_proxy);
criterion_main!(benches);
