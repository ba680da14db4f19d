//! `wafer hash` and `wafer inspect`.

use super::util::Workspace;

#[test]
fn hash_prints_the_sha256_pin() {
    let ws = Workspace::new();
    ws.write("empty.wasm", "");
    ws.wafer(&["hash", "empty.wasm"])
        .prints("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ws.wafer_with_stdin(&["hash", "-"], "")
        .prints("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ws.wafer(&["hash", "missing.wasm"])
        .fails(2, "cannot read missing.wasm");
}

#[test]
fn inspect_a_component_shows_its_world() {
    let ws = Workspace::new();
    ws.copy_guest(wafer_guests::P2_TYPES, "types.wasm");
    let run = ws.wafer(&["inspect", "types.wasm"]);
    run.code(0)
        .stdout_has("types.wasm: component")
        .stdout_has("wasi:cli/stdout@")
        .stdout_has("wafer:test/types@0.1.0")
        .stdout_has("export add: func(a: s32, b: s32) -> s32;");
    let json: serde_json::Value =
        serde_json::from_str(&ws.wafer(&["inspect", "types.wasm", "--json"]).stdout).unwrap();
    assert_eq!(json["kind"], "component");
    assert!(
        json["exports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "add")
    );
}

#[test]
fn inspect_a_core_module_lists_typed_exports() {
    let ws = Workspace::new();
    ws.copy_guest(wafer_guests::CORE_CANONICAL, "core.wasm");
    ws.wafer(&["inspect", "core.wasm"])
        .code(0)
        .stdout_has("core.wasm: core module")
        .stdout_has("greet: func(i32, i32) -> i32")
        .stdout_has("cabi_realloc: func(i32, i32, i32, i32) -> i32")
        .stdout_has("memory: memory");
    ws.write(
        "x.wat",
        "(module (import \"env\" \"log\" (func (param i32))))",
    );
    ws.wafer(&["inspect", "x.wat"])
        .code(0)
        .stdout_has("env::log: func(i32)");
}

#[test]
fn inspect_refuses_what_is_not_wasm() {
    let ws = Workspace::new();
    ws.write("notes.txt", "just text");
    ws.wafer(&["inspect", "notes.txt"])
        .fails(2, "notes.txt: not WebAssembly");
}

#[test]
fn bench_reports_calls_latency_and_instances() {
    let ws = Workspace::new();
    let registry = super::util::repo_root().join("examples/quickstart");
    let registry = registry.to_str().unwrap();
    let run = ws.wafer(&[
        "bench",
        "quickstart:add",
        "2",
        "40",
        "-r",
        registry,
        "--calls",
        "500",
        "--warmup",
        "0ms",
        "-c",
        "2",
        "--json",
    ]);
    run.code(0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["calls"], 500, "{report}");
    assert_eq!(report["ok"], 500, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert!(
        report["latency"]["p50_ns"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(
        report["instances_created"].as_u64().unwrap() >= 1,
        "{report}"
    );
    let text = ws.wafer(&[
        "bench",
        "quickstart:add",
        "2",
        "40",
        "-r",
        registry,
        "--calls",
        "100",
        "--warmup",
        "0ms",
    ]);
    text.code(0)
        .stdout_has("throughput")
        .stdout_has("latency       p50 ")
        .stdout_has("instances");
    ws.wafer(&[
        "bench",
        "quickstart:add",
        "2",
        "-r",
        registry,
        "--calls",
        "10",
    ])
    .fails(2, "expected 2 argument(s)");
}

#[test]
fn bench_refuses_more_callers_than_the_pool_can_hold() {
    let ws = Workspace::new();
    let yaml = format!(
        r#"{}  - name: f
    kind: function.wat
    source: '(module (func (export "f")))'
    method: f
    pool: {{type: static, workers: 2, buffer: 4}}
"#,
        super::util::header("t")
    );
    ws.write("_index.yaml", yaml);
    ws.wafer(&["bench", "t:f", "-c", "64", "--calls", "10"])
        .fails(
            2,
            "--concurrency 64 is more than t:f can ever take: 2 calls running plus 4 waiting",
        );
    ws.wafer(&[
        "bench", "t:f", "-c", "6", "--calls", "10", "--warmup", "0ms",
    ])
    .code(0);
}

/// A call that fails is no throughput, however fast it fails.
#[test]
fn bench_counts_failed_calls_apart_from_throughput() {
    let ws = Workspace::new();
    // Traps on an instance's second call; the trap discards the instance,
    // so calls alternate between success and trap.
    let yaml = format!(
        r#"{}  - name: every-other
    kind: function.wat
    source: '(module (global $n (mut i32) (i32.const 0)) (func (export "f") global.get $n (if (then unreachable)) i32.const 1 global.set $n))'
    method: f
"#,
        super::util::header("t")
    );
    ws.write("_index.yaml", yaml);
    let run = ws.wafer(&[
        "bench",
        "t:every-other",
        "--calls",
        "10",
        "--warmup",
        "0ms",
        "--json",
    ]);
    run.code(0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["calls"], 10, "{report}");
    assert_eq!(report["ok"], 5, "{report}");
    assert_eq!(report["failed_by_kind"]["trap"], 5, "{report}");
    let throughput = report["calls_per_second"].as_f64().unwrap();
    let ok_per_second = 5.0 / report["seconds"].as_f64().unwrap();
    assert!(
        (throughput - ok_per_second).abs() < 1e-6 * ok_per_second,
        "{report}"
    );
}
