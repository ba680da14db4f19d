//! `wafer run` on pipelines with Fluent Bit's inputs: `exec_wasi` on our
//! wasip1 programs, `dummy`, `stdin_records`, and the parsers they take.
//! Record times and tags are seen through `filter_json`, a `wasm_filter`
//! guest that copies both into the record.

use serde_json::{Value, json};
use wafer_guests::{
    FLUENTBIT_FB_JSON_LINES, FLUENTBIT_FB_LONG_LINES, FLUENTBIT_FB_TIMED_LINES,
    FLUENTBIT_FB_WRITE_FILE, FLUENTBIT_FILTER_JSON, P1_EXIT_CODE, P1_UNREACHABLE,
};

use crate::pipelines::summary_line;
use crate::util::{Run, Workspace};

/// A workspace holding the programs and `filter_json` as `<name>.wasm`.
fn workspace() -> Workspace {
    let ws = Workspace::new();
    for (guest, name) in [
        (FLUENTBIT_FB_JSON_LINES, "json_lines"),
        (FLUENTBIT_FB_LONG_LINES, "long_lines"),
        (FLUENTBIT_FB_TIMED_LINES, "timed_lines"),
        (FLUENTBIT_FB_WRITE_FILE, "write_file"),
        (P1_EXIT_CODE, "exit_code"),
        (P1_UNREACHABLE, "unreachable"),
        (FLUENTBIT_FILTER_JSON, "filter_json"),
    ] {
        ws.copy_guest(guest, &format!("{name}.wasm"));
    }
    ws
}

/// `wafer run` on a pipeline of `input` (a YAML flow mapping) to stdout,
/// through `filter_json` when `with_time`.
fn run(ws: &Workspace, name: &str, input: &str, with_time: bool, stdin: &str) -> Run {
    let processors = if with_time {
        "pipeline:\n  threads: 1\n  processors:\n    - wasm_filter: {wasm_path: filter_json.wasm, function_name: filter_json, accessible_paths: []}\n"
    } else {
        ""
    };
    let file = format!("{name}.yaml");
    ws.write(
        &file,
        format!("input:\n  {input}\n{processors}output:\n  stdout: {{}}\n"),
    );
    ws.wafer_with_stdin(&["run", &file], stdin)
}

fn records(run: &Run) -> Vec<Value> {
    run.code(0);
    run.stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn stdout_records(pieces: &[&str]) -> Vec<Value> {
    pieces.iter().map(|p| json!({ "wasi_stdout": p })).collect()
}

#[test]
fn a_oneshot_program_prints_each_line_as_a_record_then_the_input_ends() {
    let ws = workspace();
    let run = run(
        &ws,
        "lines",
        "exec_wasi: {wasi_path: json_lines.wasm, oneshot: 'On'}",
        false,
        "",
    );
    assert_eq!(
        records(&run),
        stdout_records(&[
            r#"{"n":1,"message":"line 1"}"#,
            r#"{"n":2,"message":"line 2"}"#,
            r#"{"n":3,"message":"line 3"}"#,
        ])
    );
    assert_eq!(
        summary_line(&run.stderr),
        "pipeline lines: received 3, processed 3, dropped 0, failed 0"
    );
}

#[test]
fn long_lines_split_as_fgets_splits_them() {
    let ws = workspace();
    let digits: String = (0..10_000)
        .map(|i| char::from(b'0' + (i % 10) as u8))
        .collect();
    let x = "x".repeat(4095);
    // buf_size 4096: pieces of 4,095 bytes; the line of exactly 4,095
    // leaves its newline to the next read, an empty record.
    let run = run(
        &ws,
        "split",
        "exec_wasi: {wasi_path: long_lines.wasm, oneshot: true}",
        false,
        "",
    );
    assert_eq!(
        records(&run),
        stdout_records(&[
            &digits[..4095],
            &digits[4095..8190],
            &digits[8190..],
            "short",
            &x,
            "",
            "end",
        ])
    );
    let run = self::run(
        &ws,
        "whole",
        "exec_wasi: {wasi_path: long_lines.wasm, oneshot: true, buf_size: 16k}",
        false,
        "",
    );
    assert_eq!(
        records(&run),
        stdout_records(&[&digits, "short", &x, "end"])
    );
}

#[test]
fn a_regex_parser_takes_the_time_key_and_drops_the_lines_it_refuses() {
    let ws = workspace();
    let parser = r"{format: regex, regex: '^(?<time>[^ ]+) (?<level>[A-Z]+) (?<message>.*)$', time_key: time, time_format: '%Y-%m-%dT%H:%M:%S.%L%z'}";
    let run = run(
        &ws,
        "regex",
        &format!(
            "exec_wasi: {{wasi_path: timed_lines.wasm, oneshot: true, tag: app, parser: {parser}}}"
        ),
        true,
        "",
    );
    let got = records(&run);
    assert_eq!(got.len(), 2, "{}", run.stderr);
    // 2024-05-06T07:08:09.25Z and 07:08:11.000000001Z.
    assert_eq!(got[0]["time"], "1714979289.250000000");
    assert_eq!(got[1]["time"], "1714979291.000000001");
    assert_eq!(got[0]["tag"], "app");
    assert_eq!(
        got[0]["original"],
        r#"{"level":"INFO","message":"started"}"#
    );
    assert_eq!(
        got[1]["original"],
        r#"{"level":"ERROR","message":"failed twice"}"#
    );
    assert_eq!(run.stderr.matches("the parser refused a line").count(), 3);

    // time_keep leaves the field in the record.
    let keep = format!("{}, time_keep: on}}", parser.strip_suffix('}').unwrap());
    let run = self::run(
        &ws,
        "keep",
        &format!("exec_wasi: {{wasi_path: timed_lines.wasm, oneshot: true, parser: {keep}}}"),
        false,
        "",
    );
    assert_eq!(
        records(&run)[0],
        json!({"time": "2024-05-06T09:08:09.250+0200", "level": "INFO", "message": "started"})
    );
}

#[test]
fn a_json_parser_takes_the_time_key() {
    let ws = workspace();
    let run = run(
        &ws,
        "json",
        "exec_wasi: {wasi_path: timed_lines.wasm, oneshot: true, parser: {format: json, time_key: time, time_format: '%Y-%m-%dT%H:%M:%S.%LZ'}}",
        true,
        "",
    );
    let got = records(&run);
    assert_eq!(got.len(), 2, "{}", run.stderr);
    assert_eq!(got[0]["time"], "1714979290.500000000");
    assert_eq!(got[0]["tag"], "exec_wasi");
    assert_eq!(got[0]["original"], r#"{"level":"WARN","message":"slow"}"#);
    assert_eq!(got[1]["time"], "1714979292.000000000");
    assert_eq!(got[1]["original"], r#"{"level":"INFO","message":"done"}"#);
}

#[test]
fn accessible_paths_grant_exactly_what_they_list() {
    let ws = workspace();
    std::fs::create_dir(ws.path().join("data")).unwrap();
    // The default, `.`: the working directory and what is under it.
    let run = run(
        &ws,
        "here",
        "exec_wasi: {wasi_path: write_file.wasm, oneshot: true}",
        false,
        "",
    );
    let denied_elsewhere = [
        "denied ../escape.txt",
        "denied /tmp/wafer-fb-escape.txt",
        "denied /etc/passwd",
    ];
    let mut expected = vec!["ok out.txt", "ok data/out.txt"];
    expected.extend(denied_elsewhere);
    assert_eq!(records(&run), stdout_records(&expected));
    assert!(ws.path().join("out.txt").is_file());
    assert!(ws.path().join("data/out.txt").is_file());
    std::fs::remove_file(ws.path().join("out.txt")).unwrap();
    std::fs::remove_file(ws.path().join("data/out.txt")).unwrap();

    // Only `data`: the working directory itself is out of reach.
    let run = self::run(
        &ws,
        "data",
        "exec_wasi: {wasi_path: write_file.wasm, oneshot: true, accessible_paths: data}",
        false,
        "",
    );
    let mut expected = vec!["denied out.txt", "ok data/out.txt"];
    expected.extend(denied_elsewhere);
    assert_eq!(records(&run), stdout_records(&expected));
    assert!(!ws.path().join("out.txt").exists());
    assert!(ws.path().join("data/out.txt").is_file());

    // Nothing at all, and a folder that is not there.
    let run = self::run(
        &ws,
        "none",
        "exec_wasi: {wasi_path: write_file.wasm, oneshot: true, accessible_paths: []}",
        false,
        "",
    );
    assert_eq!(
        records(&run).first(),
        Some(&json!({"wasi_stdout": "denied out.txt"}))
    );
    let run = self::run(
        &ws,
        "missing",
        "exec_wasi: {wasi_path: write_file.wasm, accessible_paths: [data, nope]}",
        false,
        "",
    );
    run.fails(
        2,
        "input.exec_wasi.accessible_paths: `nope` is not a folder",
    );
}

#[test]
fn a_failing_program_gives_what_it_printed_and_a_trapping_one_nothing() {
    let ws = workspace();
    // exit_code prints "exiting" (and "bye" on stderr) and exits 2: the
    // status is ignored.
    let run = run(
        &ws,
        "status",
        "exec_wasi: {wasi_path: exit_code.wasm, oneshot: true}",
        false,
        "",
    );
    assert_eq!(records(&run), stdout_records(&["exiting"]));
    // Its stderr is the guest's log, as Fluent Bit leaves it on stderr.
    run.stderr_has("bye");
    let run = self::run(
        &ws,
        "trap",
        "exec_wasi: {wasi_path: unreachable.wasm, oneshot: true}",
        false,
        "",
    );
    assert!(records(&run).is_empty());
    run.stderr_has("the program failed");
}

#[cfg(unix)]
#[test]
fn without_oneshot_the_program_runs_every_interval_until_stopped() {
    let ws = workspace();
    ws.write(
        "every.yaml",
        "input:\n  exec_wasi: {wasi_path: json_lines.wasm, interval_sec: 0, interval_nsec: 1000000}\noutput:\n  file: {path: out.txt}\n",
    );
    let out = ws.path().join("out.txt");
    let args = ["run", "every.yaml"];
    // Stopped once three runs were written.
    let run = crate::util::interrupt_once(&args, ws.command(&args), || {
        std::fs::read_to_string(&out).is_ok_and(|text| text.lines().count() >= 9)
    });
    run.code(0);
    let written = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines.len() % 3, 0, "a run's records are written together");
    for (i, line) in lines.iter().enumerate() {
        let n = i % 3 + 1;
        let expected = json!({ "wasi_stdout": format!("{{\"n\":{n},\"message\":\"line {n}\"}}") });
        assert_eq!(serde_json::from_str::<Value>(line).unwrap(), expected);
    }
}

#[test]
fn dummy_makes_samples_times_copies_records_then_ends() {
    let ws = workspace();
    let run = run(
        &ws,
        "dummy",
        r#"dummy: {dummy: '{"a":1,"b":"x"}', samples: 4, copies: '3', rate: 1000, tag: d}"#,
        true,
        "",
    );
    let got = records(&run);
    assert_eq!(got.len(), 12, "{}", run.stderr);
    for record in &got {
        assert_eq!(record["original"], r#"{"a":1,"b":"x"}"#);
        assert_eq!(record["tag"], "d");
    }
    // A fixed timestamp: every record at start_time.
    let run = self::run(
        &ws,
        "fixed",
        "dummy: {samples: 2, flush_on_startup: on, interval_nsec: 1000, start_time_sec: 1714979289, start_time_nsec: 5, fixed_timestamp: true}",
        true,
        "",
    );
    let got = records(&run);
    assert_eq!(got.len(), 2);
    for record in &got {
        assert_eq!(record["time"], "1714979289.000000005");
        assert_eq!(record["original"], r#"{"message":"dummy"}"#);
        assert_eq!(record["tag"], "dummy");
    }
    let run = self::run(&ws, "bad", "dummy: {dummy: '[1]'}", false, "");
    run.fails(2, "input.dummy.dummy: not a JSON object");
}

#[test]
fn stdin_records_reads_json_values_and_event_arrays() {
    let ws = workspace();
    let stdin = "{\"a\":1}\n[1714979289.5, {\"b\":2}]\nnot json\n[[1714979290, {\"m\":1}], {\"c\":3}] {\"d\":\n4}\n";
    let run = run(&ws, "json", "stdin_records: {tag: in}", true, stdin);
    let got = records(&run);
    let originals: Vec<&Value> = got.iter().map(|r| &r["original"]).collect();
    assert_eq!(
        originals,
        [r#"{"a":1}"#, r#"{"b":2}"#, r#"{"c":3}"#, r#"{"d":4}"#]
    );
    assert_eq!(got[1]["time"], "1714979289.500000000");
    assert_eq!(got[2]["time"], "1714979290.000000000");
    assert!(got.iter().all(|r| r["tag"] == "in"));
    run.stderr_has("invalid JSON");
}

#[test]
fn stdin_records_parses_lines_with_a_parser() {
    let ws = workspace();
    let input = "stdin_records: {parser: {format: regex, regex: '^(?<key>\\w+)=(?<value>\\d+)$', types: 'value:integer'}}";
    let run = run(&ws, "parsed", input, false, "a=1\nnope\nb=22");
    assert_eq!(
        records(&run),
        [
            json!({"key": "a", "value": 1}),
            json!({"key": "b", "value": 22})
        ]
    );
    run.stderr_has("the parser refused a line");
}
