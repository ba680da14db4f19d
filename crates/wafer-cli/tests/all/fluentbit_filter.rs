//! `wafer run` on pipelines with Fluent Bit's `wasm` filter
//! (`wasm_filter`), on our guests written to Fluent Bit's filter ABI.

use wafer_guests::{
    FLUENTBIT_FB_FILTER_LOG, FLUENTBIT_FILTER_ANSWER, FLUENTBIT_FILTER_JSON,
    FLUENTBIT_FILTER_MSGPACK, WAT_FLUENTBIT_HEAP_END,
};

use crate::pipelines::summary_line;
use crate::util::{Run, Workspace};

/// A workspace holding the filter guests as `<name>.wasm`.
fn workspace() -> Workspace {
    let ws = Workspace::new();
    for (guest, name) in [
        (FLUENTBIT_FILTER_ANSWER, "answer.wasm"),
        (FLUENTBIT_FILTER_JSON, "json.wasm"),
        (FLUENTBIT_FILTER_MSGPACK, "msgpack.wasm"),
        (WAT_FLUENTBIT_HEAP_END, "heap_end.wat"),
        (FLUENTBIT_FB_FILTER_LOG, "filter_log.wasm"),
    ] {
        ws.copy_guest(guest, name);
    }
    ws
}

/// A pipeline of JSON lines on stdin through one `wasm_filter` to stdout,
/// dropping what the filter fails on, as Fluent Bit does.
fn filter_pipeline(ws: &Workspace, name: &str, filter: &str) {
    ws.write(
        &format!("{name}.yaml"),
        format!(
            r#"
input:
  stdin: {{}}
pipeline:
  threads: 2
  ordered: true
  processors:
    - wasm_filter: {filter}
output:
  stdout: {{}}
on_error: drop
"#
        ),
    );
}

fn lines(run: &Run) -> Vec<serde_json::Value> {
    run.stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[test]
fn a_filter_shaped_like_fluent_bits_rust_example_rewrites_every_record() {
    // It answers a pointer into a buffer it already freed, with no NUL
    // after the JSON: the host takes the first complete JSON value.
    let ws = workspace();
    filter_pipeline(
        &ws,
        "json",
        "{wasm_path: json.wasm, function_name: filter_json, accessible_paths: []}",
    );
    let input: String = (0..1000)
        .map(|i| format!("{{\"message\":\"m{i}\",\"n\":{i}}}\n"))
        .collect();
    let run = ws.wafer_with_stdin(&["run", "json.yaml"], &input);
    run.code(0);
    let records = lines(&run);
    assert_eq!(records.len(), 1000, "{}", run.stderr);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record["message"], format!("m{i}"));
        assert_eq!(record["lang"], "Rust");
        assert_eq!(record["tag"], "");
        assert_eq!(
            record["original"],
            format!("{{\"message\":\"m{i}\",\"n\":{i}}}")
        );
    }
    assert_eq!(
        summary_line(&run.stderr),
        "pipeline json: received 1000, processed 1000, dropped 0, failed 0"
    );
}

#[test]
fn each_answer_rule_keeps_drops_or_fails_the_record() {
    let ws = workspace();
    filter_pipeline(
        &ws,
        "answers",
        "{wasm_path: answer.wasm, function_name: filter_answer, accessible_paths: []}",
    );
    let answers = [
        "keep",
        "null",
        "empty",
        "array",
        "string",
        "text",
        "outside",
        "unterminated",
        "keep2",
    ];
    let input: String = answers
        .iter()
        .map(|a| format!("{{\"answer\":\"{a}\"}}\n"))
        .collect();
    let run = ws.wafer_with_stdin(&["run", "answers.yaml"], &input);
    // NULL and the empty string drop the record quietly (filtered out);
    // the other answers that are not an object are failures, logged.
    run.prints("{\"answer\":\"keep\"}\n{\"answer\":\"keep2\"}");
    assert_eq!(
        summary_line(&run.stderr),
        "pipeline answers: received 9, processed 2, dropped 5, failed 5, filtered out 2"
    );
    run.stderr_has("not a JSON object");
}

#[test]
fn a_trap_on_one_record_among_ten_thousand_drops_only_that_one() {
    let ws = workspace();
    filter_pipeline(
        &ws,
        "trap",
        "{wasm_path: answer.wasm, function_name: filter_answer, accessible_paths: []}",
    );
    let input: String = (0..10_000)
        .map(|i| {
            let answer = if i == 5_000 { "trap" } else { "keep" };
            format!("{{\"answer\":\"{answer}\",\"n\":{i}}}\n")
        })
        .collect();
    let run = ws.wafer_with_stdin(&["run", "trap.yaml"], &input);
    run.code(0);
    let records = lines(&run);
    assert_eq!(records.len(), 9_999);
    assert!(records.iter().all(|r| r["answer"] == "keep"));
    let numbers: Vec<u64> = records.iter().map(|r| r["n"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (0..10_000).filter(|&n| n != 5_000).collect();
    assert_eq!(numbers, expected, "in order, the trapped one missing");
    assert_eq!(
        summary_line(&run.stderr),
        "pipeline trap: received 10000, processed 9999, dropped 1, failed 1"
    );
}

#[test]
fn a_filter_that_loops_is_stopped_at_its_time_limit_and_the_rest_flow_on() {
    let ws = workspace();
    filter_pipeline(
        &ws,
        "spin",
        "{wasm_path: answer.wasm, function_name: filter_answer, accessible_paths: [], limits: {max_execution_ms: 300}}",
    );
    let input = "{\"answer\":\"keep\"}\n{\"answer\":\"spin\"}\n{\"answer\":\"keep\"}\n";
    let run = ws.wafer_with_stdin(&["run", "spin.yaml"], input);
    run.prints("{\"answer\":\"keep\"}\n{\"answer\":\"keep\"}");
    assert_eq!(
        summary_line(&run.stderr),
        "pipeline spin: received 3, processed 2, dropped 1, failed 1"
    );
}

#[test]
fn msgpack_records_with_zero_bytes_survive_the_filter() {
    let ws = workspace();
    filter_pipeline(
        &ws,
        "msgpack",
        "{wasm_path: msgpack.wasm, function_name: filter_msgpack, event_format: msgpack, accessible_paths: []}",
    );
    let input = "{\"log\":\"a\\u0000b\",\"n\":-1,\"f\":2.5}\n{\"log\":\"\\u0000\"}\n";
    let run = ws.wafer_with_stdin(&["run", "msgpack.yaml"], input);
    run.prints(concat!(
        r#"{"log":"a\u0000b","n":-1,"f":2.5,"platform":"wasm","tag":""}"#,
        "\n",
        r#"{"log":"\u0000","platform":"wasm","tag":""}"#
    ));
}

#[test]
fn a_guest_with_its_own_malloc_gets_its_copies_through_it() {
    // Its heap owns the end of memory: a page grown behind its back, or a
    // copy not given back, shows in its answer.
    let ws = workspace();
    filter_pipeline(
        &ws,
        "heap",
        "{wasm_path: heap_end.wat, function_name: filter_heap, accessible_paths: []}",
    );
    // Records up to 60 KB (9 MB in all: its `free` keeps nothing) make
    // the heap grow while the stream runs.
    let input: String = (0..300)
        .map(|i| format!("{{\"pad\":\"{}\"}}\n", "x".repeat(i * 200)))
        .collect();
    let run = ws.wafer_with_stdin(&["run", "heap.yaml"], &input);
    run.code(0);
    let answers: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(answers.len(), 300, "{}", run.stderr);
    assert!(
        answers.iter().all(|a| *a == "{\"heap\":\"ok\"}"),
        "{answers:?}"
    );
}

#[test]
fn a_bad_filter_config_names_its_field() {
    let ws = workspace();
    filter_pipeline(
        &ws,
        "nofunc",
        "{wasm_path: json.wasm, function_name: no_such_export}",
    );
    ws.wafer(&["run", "nofunc.yaml"])
        .code(2)
        .stderr_has("function_name")
        .stderr_has("no_such_export");
    filter_pipeline(
        &ws,
        "format",
        "{wasm_path: json.wasm, function_name: filter_json, event_format: xml}",
    );
    ws.wafer(&["run", "format.yaml"])
        .code(2)
        .stderr_has("event_format")
        .stderr_has("`xml` is not an event format");
}

#[test]
fn a_wasi_filter_filters_each_record_once_even_when_one_traps() {
    // A TinyGo-shaped guest (WASI, its own malloc/free) that logs every
    // call to a file in the folder `accessible_paths` grants, then traps
    // on one record: the records after it go on in a fresh instance, and
    // none is filtered twice.
    let ws = workspace();
    filter_pipeline(
        &ws,
        "logged",
        "{wasm_path: filter_log.wasm, function_name: filter_log, accessible_paths: [.]}",
    );
    let names = ["a", "b", "trap", "c", "d", "e"];
    let input: String = names
        .iter()
        .map(|n| format!("{{\"name\":\"{n}\"}}\n"))
        .collect();
    let run = ws.wafer_with_stdin(&["run", "logged.yaml"], &input);
    run.prints(
        "{\"name\":\"a\"}\n{\"name\":\"b\"}\n{\"name\":\"c\"}\n{\"name\":\"d\"}\n{\"name\":\"e\"}",
    );
    assert_eq!(
        summary_line(&run.stderr),
        "pipeline logged: received 6, processed 5, dropped 1, failed 1"
    );
    run.stderr_has("the filter trapped on this record");
    // Two workers may each take part of the stream: sorted, the log holds
    // each record once.
    let calls = std::fs::read_to_string(ws.path().join("calls.log")).unwrap();
    let mut calls: Vec<&str> = calls.lines().collect();
    let mut expected: Vec<&str> = input.lines().collect();
    calls.sort_unstable();
    expected.sort_unstable();
    assert_eq!(calls, expected, "each record reached the guest once");
}

#[test]
fn failures_one_after_another_each_get_a_fresh_instance() {
    // Traps back to back, a loop stopped at its limit, and a trap on the
    // last record: each fails only itself.
    let ws = workspace();
    filter_pipeline(
        &ws,
        "many",
        "{wasm_path: answer.wasm, function_name: filter_answer, accessible_paths: [], limits: {max_execution_ms: 300}}",
    );
    let answers = ["keep", "trap", "trap", "spin", "keep", "trap"];
    let input: String = answers
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{{\"answer\":\"{a}\",\"n\":{i}}}\n"))
        .collect();
    let run = ws.wafer_with_stdin(&["run", "many.yaml"], &input);
    run.prints("{\"answer\":\"keep\",\"n\":0}\n{\"answer\":\"keep\",\"n\":4}");
    assert_eq!(
        summary_line(&run.stderr),
        "pipeline many: received 6, processed 2, dropped 4, failed 4"
    );
    run.stderr_has("the filter trapped on this record: ")
        .stderr_has("wasm `unreachable` instruction executed");
}
