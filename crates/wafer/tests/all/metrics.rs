//! The runtime's metrics, rendered in the Prometheus text format, count
//! what the call path did: every outcome, latency, instances, compiling.

use serde_json::json;
use wafer::{ErrorKind, Registry, Runtime};

use super::util::types_runtime;

/// Asserts that `text` has the series line `line`, printing all of it if
/// not.
fn has_line(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "expected the line\n{line}\nin\n{text}"
    );
}

#[tokio::test]
async fn calls_are_counted_by_outcome_with_their_latency() {
    let yaml = r#"
version: "1.0"
namespace: m
entries:
  - name: add
    kind: function.wat
    source: '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
    method: add
  - name: broken
    kind: function.wat
    source: '(module (func (export "f") (result i32) i32.const))'
    method: f
"#;
    let runtime = Runtime::new(Registry::from_yaml("/m.yaml", yaml)).unwrap();
    for _ in 0..2 {
        runtime
            .call("m:add", vec![json!(1), json!(2)])
            .await
            .unwrap();
    }
    let err = runtime.call("m:add", vec![json!("one")]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput);
    let err = runtime.call("m:broken", vec![]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    let err = runtime.call("m:nowhere", vec![]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownFunction);

    let text = runtime.metrics_text();
    has_line(
        &text,
        r#"wafer_function_calls_total{function="m:add",outcome="ok"} 2"#,
    );
    has_line(
        &text,
        r#"wafer_function_calls_total{function="m:add",outcome="bad_input"} 1"#,
    );
    has_line(
        &text,
        r#"wafer_function_calls_total{function="m:add",outcome="trap"} 0"#,
    );
    has_line(
        &text,
        r#"wafer_function_calls_total{function="m:broken",outcome="refused"} 1"#,
    );
    has_line(
        &text,
        r#"wafer_function_call_duration_seconds_count{function="m:add"} 3"#,
    );
    has_line(
        &text,
        r#"wafer_function_call_duration_seconds_bucket{le="+Inf",function="m:add"} 3"#,
    );
    has_line(
        &text,
        r#"wafer_function_instances_created_total{function="m:add"} 1"#,
    );
    has_line(
        &text,
        r#"wafer_function_instances{function="m:add",state="alive"} 1"#,
    );
    has_line(
        &text,
        r#"wafer_function_instances{function="m:add",state="idle"} 1"#,
    );
    has_line(
        &text,
        r#"wafer_function_calls_in_flight{function="m:add",state="running"} 0"#,
    );
    has_line(&text, "wafer_modules_compiled_total 1");
    assert!(
        !text.contains("m:nowhere"),
        "unknown ids must not grow the metrics:\n{text}"
    );
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test]
async fn guest_errors_traps_and_limits_have_outcomes_of_their_own() {
    let runtime = types_runtime(&[
        ("divide", "types#divide", ""),
        (
            "misbehave",
            "types#misbehave",
            "    limits:\n      max_execution_ms: 1000\n",
        ),
    ]);
    let answer = runtime
        .call("t:divide", vec![json!(1), json!(0)])
        .await
        .unwrap();
    assert_eq!(answer, json!({"err": "division by zero"}));
    runtime
        .call("t:misbehave", vec![json!("trap")])
        .await
        .unwrap_err();
    runtime
        .call("t:misbehave", vec![json!("spin")])
        .await
        .unwrap_err();

    let text = runtime.metrics_text();
    has_line(
        &text,
        r#"wafer_function_calls_total{function="t:divide",outcome="guest_error"} 1"#,
    );
    has_line(
        &text,
        r#"wafer_function_calls_total{function="t:divide",outcome="ok"} 0"#,
    );
    has_line(
        &text,
        r#"wafer_function_calls_total{function="t:misbehave",outcome="trap"} 1"#,
    );
    has_line(
        &text,
        r#"wafer_function_calls_total{function="t:misbehave",outcome="time_limit"} 1"#,
    );
    has_line(
        &text,
        r#"wafer_function_instances{function="t:misbehave",state="alive"} 0"#,
    );
    let function = runtime.function("t:misbehave").await.unwrap();
    let stats = function.call_stats();
    assert_eq!((stats.calls(), stats.succeeded()), (2, 0));
    assert_eq!(stats.failed(ErrorKind::TimeLimit), 1);
}
