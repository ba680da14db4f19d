//! Instance life: reuse, discarding after a trap or a limit, concurrency.

use std::sync::Arc;

use serde_json::{Value, json};
use wafer::{Error, Registry, Runtime};

use super::util::{TYPES, types_runtime, wait_until};

fn counter_runtime() -> Runtime {
    let yaml = format!(
        r#"
version: "1.0"
namespace: t
entries:
  - name: reused
    kind: function.wat
    source: file://{path}
    method: counter
  - name: fresh
    kind: function.wat
    source: file://{path}
    method: counter
    pool:
      type: inline
"#,
        path = wafer_guests::WAT_COUNTER
    );
    Runtime::new(Registry::from_yaml("/counter.yaml", &yaml)).unwrap()
}

#[tokio::test]
async fn warm_instance_keeps_state_and_inline_never_does() {
    let runtime = counter_runtime();
    for expected in 1..=3 {
        assert_eq!(
            runtime.call("t:reused", vec![]).await.unwrap(),
            json!(expected)
        );
    }
    for _ in 0..3 {
        assert_eq!(runtime.call("t:fresh", vec![]).await.unwrap(), json!(1));
    }
}

/// Calls `t:misbehave` of `runtime` with `how`.
async fn misbehave(runtime: &Runtime, how: &str) -> wafer::Result<Value> {
    runtime.call("t:misbehave", vec![json!(how)]).await
}

#[tokio::test]
async fn a_trap_discards_the_instance_and_the_function_recovers() {
    let runtime = types_runtime(&[("misbehave", "types#misbehave", "")]);
    assert_eq!(misbehave(&runtime, "count").await.unwrap(), json!(1));
    let err = misbehave(&runtime, "trap").await.unwrap_err();
    assert!(matches!(err, Error::Trap { .. }), "{err}");
    assert!(err.to_string().contains("unreachable"), "{err}");
    assert_eq!(
        misbehave(&runtime, "count").await.unwrap(),
        json!(1),
        "the next call runs on a fresh instance"
    );
    let stats = runtime.function("t:misbehave").await.unwrap().pool_stats();
    assert_eq!((stats.created, stats.live), (2, 1), "{stats:?}");
}

#[tokio::test]
async fn endless_loop_is_stopped_by_its_limit_and_the_function_recovers() {
    assert_eq!(misbehave(&TYPES, "count").await.unwrap(), json!(1));
    let err = misbehave(&TYPES, "spin").await.unwrap_err();
    assert!(
        matches!(err, Error::DeadlineExceeded { limit_ms: 1000, .. }),
        "{err}"
    );
    assert_eq!(
        misbehave(&TYPES, "count").await.unwrap(),
        json!(1),
        "the next call runs on a fresh instance"
    );
}

#[tokio::test]
async fn stack_overflow_is_a_trap() {
    let yaml = format!(
        "version: \"1.0\"\nnamespace: t\nentries:\n  - name: overflow\n    kind: function.wat\n    source: file://{}\n    method: overflow\n",
        wafer_guests::WAT_OVERFLOW
    );
    let runtime = Runtime::new(Registry::from_yaml("/o.yaml", &yaml)).unwrap();
    let err = runtime
        .call("t:overflow", vec![json!(0)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Trap { .. }), "{err}");
    assert!(err.to_string().contains("call stack exhausted"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_get_their_own_answers() {
    let runtime: Arc<Runtime> = TYPES.clone();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let runtime = runtime.clone();
            tokio::spawn(async move {
                let name = format!("caller-{i}");
                let greeting = runtime
                    .call("t:greet", vec![Value::String(name.clone())])
                    .await
                    .unwrap();
                let sum = runtime
                    .call("t:add", vec![json!(i), json!(1000)])
                    .await
                    .unwrap();
                (greeting, sum, name, i)
            })
        })
        .collect();
    for task in tasks {
        let (greeting, sum, name, i) = task.await.unwrap();
        assert_eq!(greeting, json!(format!("hello, {name}")));
        assert_eq!(sum, json!(i + 1000));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_call_stops_the_guest_and_the_function_stays_usable() {
    // No limit that could end the call first: only the drop stops it.
    let runtime = Arc::new(types_runtime(&[(
        "misbehave",
        "types#misbehave",
        "    limits:\n      max_execution_ms: 3600000\n",
    )]));
    let function = runtime.function("t:misbehave").await.unwrap();
    let spinning = {
        let runtime = runtime.clone();
        tokio::spawn(async move { misbehave(&runtime, "spin").await })
    };
    wait_until("the guest spins", || function.pool_stats().live == 1).await;
    spinning.abort();
    assert!(spinning.await.unwrap_err().is_cancelled());
    wait_until("the spinning instance is gone", || {
        let stats = function.pool_stats();
        stats.running == 0 && stats.live == 0
    })
    .await;
    assert_eq!(misbehave(&runtime, "count").await.unwrap(), json!(1));
}

#[tokio::test]
async fn core_module_with_canonical_abi_strings_and_lists() {
    let yaml = format!(
        r#"
version: "1.0"
namespace: t
entries:
  - name: dir
    kind: fs.directory
    directory: {dir:?}
  - name: greet
    kind: function.wasm
    fs: dir
    path: /core_canonical.wasm
    hash: {hash}
    method: greet
    wit: "greet: func(name: string) -> string;"
  - name: sum
    kind: function.wasm
    fs: dir
    path: core_canonical.wasm
    hash: {hash}
    method: sum
    wit: |
      sum: func(values: list<s32>) -> s64;
  - name: add
    kind: function.wasm
    fs: dir
    path: core_canonical.wasm
    hash: {hash}
    method: add
"#,
        dir = std::path::Path::new(wafer_guests::CORE_CANONICAL)
            .parent()
            .unwrap(),
        hash = wafer::Sha256Hash::of(&std::fs::read(wafer_guests::CORE_CANONICAL).unwrap()),
    );
    let runtime = Runtime::new(Registry::from_yaml("/c.yaml", &yaml)).unwrap();
    assert_eq!(
        runtime.call("t:greet", vec![json!("Zoë")]).await.unwrap(),
        json!("hello, Zoë")
    );
    assert_eq!(
        runtime
            .call("t:sum", vec![json!([1, 2, 3, i32::MAX])])
            .await
            .unwrap(),
        json!(2147483653i64)
    );
    assert_eq!(
        runtime
            .call("t:add", vec![json!(-2), json!(-3)])
            .await
            .unwrap(),
        json!(-5)
    );
    assert_eq!(
        runtime.function("t:add").await.unwrap().signature(),
        "func(p0: s32, p1: s32) -> s32"
    );
}

#[tokio::test]
async fn linked_wasi_grants_nothing() {
    // PATH is set in every host environment the tests run in.
    assert!(std::env::var_os("PATH").is_some());
    assert_eq!(
        TYPES.call("t:env-var", vec![json!("PATH")]).await.unwrap(),
        json!(null)
    );
    let read = TYPES
        .call("t:read-file", vec![json!("/etc/passwd")])
        .await
        .unwrap();
    assert!(read.get("err").is_some(), "a file was readable: {read}");
}

#[tokio::test]
async fn a_flood_of_output_is_capped_and_the_call_still_succeeds() {
    // 10 MB of stdout: logged up to the cap, the rest dropped, never a trap.
    let written = TYPES.call("t:flood", vec![json!(100_000)]).await.unwrap();
    assert_eq!(written, json!(10_000_000));
    assert_eq!(
        TYPES.call("t:add", vec![json!(1), json!(1)]).await.unwrap(),
        json!(2)
    );
}

#[tokio::test]
async fn core_exports_named_in_the_source_language_are_callable() {
    let yaml = r#"
version: "1.0"
namespace: t
entries:
  - name: snake
    kind: function.wat
    source: '(module (func (export "add_two") (param i32) (result i32) local.get 0 i32.const 2 i32.add))'
    method: add_two
  - name: camel
    kind: function.wat
    source: '(module (func (export "addThree") (param i32) (result i32) local.get 0 i32.const 3 i32.add))'
    wit: "add-three: func(n: s32) -> s32;"
    method: addThree
  - name: kebab
    kind: function.wat
    source: '(module (func (export "add_two") (param i32) (result i32) local.get 0 i32.const 2 i32.add))'
    wit: "add-two: func(n: s32) -> s32;"
    method: add-two
"#;
    let runtime = Runtime::new(Registry::from_yaml("/n.yaml", yaml)).unwrap();
    assert_eq!(
        runtime.call("t:snake", vec![json!(40)]).await.unwrap(),
        json!(42)
    );
    assert_eq!(
        runtime.call("t:camel", vec![json!(39)]).await.unwrap(),
        json!(42)
    );
    assert_eq!(
        runtime.call("t:kebab", vec![json!(40)]).await.unwrap(),
        json!(42)
    );
    assert_eq!(
        runtime.function("t:camel").await.unwrap().signature(),
        "func(n: s32) -> s32"
    );
}

#[tokio::test]
async fn core_modules_that_import_wasi_preview1_run_through_the_adapter() {
    // What a wasip1 toolchain emits: fd_write to stdout, then an answer.
    let yaml = r#"
version: "1.0"
namespace: t
entries:
  - name: hello
    kind: function.wat
    source: |
      (module
        (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 16) "hello from wasip1\n")
        (func (export "hello") (result i32)
          (i32.store (i32.const 0) (i32.const 16))
          (i32.store (i32.const 4) (i32.const 18))
          (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
          (i32.const 42)))
    wit: "hello: func() -> s32;"
    method: hello
"#;
    let runtime = Runtime::new(Registry::from_yaml("/p1.yaml", yaml)).unwrap();
    assert_eq!(runtime.call("t:hello", vec![]).await.unwrap(), json!(42));
    assert_eq!(runtime.call("t:hello", vec![]).await.unwrap(), json!(42));
}
