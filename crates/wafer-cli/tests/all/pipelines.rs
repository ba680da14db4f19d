//! `wafer run` on pipelines: Benthos configs and registry `pipeline`
//! entries, with our Benthos-ABI guests, driven as a user drives them.

use wafer_guests::{
    BENTHOS_BENTO_LOUDER, BENTHOS_GROW, BENTHOS_INPLACE, BENTHOS_LOUDER, BENTHOS_META,
    BENTHOS_OUT_OF_BOUNDS, BENTHOS_SPIN, BENTHOS_TINY_UPPER, BENTHOS_TRAP,
};

use crate::util::{ADD_ENTRY, Run, Workspace, header};

/// What Benthos' `louder` appends.
pub(crate) const LOUD: &str = "!!!!111!!11!";

/// A workspace holding every Benthos guest as `<name>.wasm`.
fn workspace() -> Workspace {
    let ws = Workspace::new();
    for (guest, name) in [
        (BENTHOS_LOUDER, "louder"),
        (BENTHOS_BENTO_LOUDER, "bento_louder"),
        (BENTHOS_TINY_UPPER, "tiny_upper"),
        (BENTHOS_INPLACE, "inplace"),
        (BENTHOS_META, "meta"),
        (BENTHOS_TRAP, "trap"),
        (BENTHOS_SPIN, "spin"),
        (BENTHOS_OUT_OF_BOUNDS, "oob"),
        (BENTHOS_GROW, "grow"),
    ] {
        ws.copy_guest(guest, &format!("{name}.wasm"));
    }
    ws
}

/// `count` numbered lines: `m0` to `m{count-1}`, with `special` at index
/// `at` when given.
fn numbered(count: usize, special: Option<(usize, &str)>) -> String {
    (0..count)
        .map(|i| match special {
            Some((at, line)) if at == i => format!("{line}\n"),
            _ => format!("m{i}\n"),
        })
        .collect()
}

/// The summary line a run printed for its one pipeline.
fn summary(run: &Run) -> &str {
    summary_line(&run.stderr)
}

/// The summary line a log holds for its one pipeline.
pub(crate) fn summary_line(log: &str) -> &str {
    log.lines()
        .find(|line| line.starts_with("pipeline "))
        .unwrap_or_else(|| panic!("no summary line in:\n{log}"))
}

#[test]
fn stdin_lines_go_through_both_allocator_styles_in_order() {
    let ws = workspace();
    ws.write(
        "upper.yaml",
        r#"
input:
  stdin: {}
pipeline:
  threads: 1
  processors:
    - wasm: {module_path: louder.wasm}
    - wasm: {module_path: tiny_upper.wasm, function: process}
output:
  stdout: {}
"#,
    );
    // The empty line is a message too (Benthos' `lines` scanner keeps
    // it): `louder` makes it all exclamation marks. The `\r` of `\r\n`
    // is dropped.
    let run = ws.wafer_with_stdin(&["run", "upper.yaml"], "hello\n\nworld\r\n");
    run.prints(&format!("HELLO{LOUD}\n{LOUD}\nWORLD{LOUD}"));
    assert_eq!(
        summary(&run),
        "pipeline upper: received 3, processed 3, dropped 0, failed 0"
    );
}

#[test]
fn a_line_over_the_scanner_limit_fails_the_input_after_the_lines_before_it() {
    let ws = workspace();
    ws.write(
        "tight.yaml",
        r#"
input:
  stdin:
    scanner: {lines: {max_buffer_size: 8}}
pipeline:
  threads: 1
output:
  stdout: {}
"#,
    );
    // Eight bytes with the `\n`: `1234567` fits, the next line does not.
    let run = ws.wafer_with_stdin(&["run", "tight.yaml"], "1234567\n12345678\nnever\n");
    run.code(1)
        .stderr_has("line 2: longer than 8 bytes, the limit `scanner.lines.max_buffer_size` sets");
    assert_eq!(run.stdout, "1234567\n");
    assert_eq!(
        summary(&run),
        "pipeline tight: received 1, processed 1, dropped 0, failed 0"
    );
    // A custom delimiter: no `\r` dropped, empty lines kept, the last
    // line unterminated.
    ws.write(
        "pipes.yaml",
        "input: {stdin: {scanner: {lines: {custom_delimiter: '|'}}}}\noutput: {stdout: {}}\n",
    );
    ws.wafer_with_stdin(&["run", "pipes.yaml"], "a|b\r||c")
        .prints("a\nb\r\n\nc");
}

#[test]
fn an_empty_label_is_none_and_a_label_names_one_component() {
    let ws = workspace();
    // Seed 000 writes Benthos' default, `label: ""`, on every component.
    ws.write(
        "unlabelled.yaml",
        r#"
input:
  label: ""
  stdin: {}
pipeline:
  threads: 1
  processors:
    - label: ""
      wasm: {module_path: louder.wasm}
    - label: ""
      wasm: {module_path: tiny_upper.wasm, function: process}
output:
  label: ""
  stdout: {}
"#,
    );
    ws.wafer_with_stdin(&["run", "unlabelled.yaml"], "a\n")
        .prints(&format!("A{LOUD}"));
    ws.write(
        "shared.yaml",
        r#"
input:
  label: shout
  stdin: {}
pipeline:
  processors:
    - label: louder
      wasm: {module_path: louder.wasm}
    - label: louder
      wasm: {module_path: tiny_upper.wasm, function: process}
output:
  label: shout
  stdout: {}
"#,
    );
    let second = "pipeline.processors[1].label";
    let collides = "label `louder` collides with the label of pipeline.processors[0]";
    ws.wafer(&["run", "shared.yaml"])
        .code(2)
        .stderr_has(second)
        .stderr_has(collides)
        .stderr_has("output.label")
        .stderr_has("label `shout` collides with the label of input");
    ws.wafer(&["check", "shared.yaml"])
        .code(1)
        .stdout_has(second)
        .stdout_has(collides);
}

#[test]
fn a_benthos_config_runs_as_its_users_wrote_it() {
    let ws = workspace();
    // Seed 000's shape: a labelled wasm block under input.processors, a
    // module path from the environment, a default for an unset variable.
    ws.write(
        "config.yaml",
        r#"
input:
  label: from_stdin
  stdin:
    codec: lines
  processors:
    - label: louder
      wasm:
        module_path: "${LOUDER_PATH}"
        function: process
pipeline:
  threads: ${THREADS:2}
  processors:
    - label: bento
      wasm:
        module_path: ${BENTO_PATH:bento_louder.wasm}
output:
  label: out
  stdout:
    codec: lines
"#,
    );
    let mut command = ws.command(&["run", "config.yaml"]);
    command
        .env("LOUDER_PATH", "louder.wasm")
        .env_remove("BENTO_PATH");
    let run = crate::util::run_with_stdin(&["run", "config.yaml"], command, "a\n");
    run.prints(&format!("a{LOUD}{LOUD}"));
}

#[test]
fn an_unset_variable_and_an_unknown_component_are_named() {
    let ws = workspace();
    ws.write(
        "bad.yaml",
        r#"
input:
  kafka: {addresses: [localhost:9092]}
pipeline:
  processors:
    - wasm: {module_path: "${NOT_SET_ANYWHERE}"}
    - wasm: {module_pth: louder.wasm}
output:
  stdout: {}
"#,
    );
    let run = ws.wafer(&["run", "bad.yaml"]);
    run.code(2)
        .stderr_has("NOT_SET_ANYWHERE is not set and has no default");
    let ws = workspace();
    ws.write(
        "bad.yaml",
        r#"
input:
  kafka: {addresses: [localhost:9092]}
pipeline:
  processors:
    - wasm: {module_pth: louder.wasm}
output:
  stdout: {}
"#,
    );
    let run = ws.wafer(&["run", "bad.yaml"]);
    run.code(2)
        .stderr_has("input.kafka")
        .stderr_has("wafer has no input `kafka` (supported: dummy, exec_wasi, file, generate, http_server, nats, nats_jetstream, stdin, stdin_records)")
        .stderr_has("pipeline.processors[0].wasm.module_pth")
        .stderr_has("unknown field `module_pth`");
    // `wafer check` lists the same problems, and compiles the modules.
    ws.write(
        "broken_module.yaml",
        "input: {stdin: {}}\npipeline: {processors: [{wasm: {module_path: bad.yaml}}]}\noutput: {drop: {}}\n",
    );
    ws.wafer(&["check", "bad.yaml"])
        .code(1)
        .stdout_has("input.kafka")
        .stdout_has("pipeline.processors[0].wasm.module_pth");
    ws.wafer(&["check", "broken_module.yaml"])
        .code(1)
        .stdout_has("pipeline.processors[0].wasm.module_path");
}

#[test]
fn files_in_equal_lines_out_in_order_with_two_threads() {
    let ws = workspace();
    let first = numbered(6000, None);
    let second = numbered(4000, None).replace('m', "n");
    ws.write("in/a.txt", &first);
    ws.write("in/b.txt", &second);
    ws.write(
        "ordered.yaml",
        r#"
input:
  file: {paths: ["in/*.txt"]}
pipeline:
  threads: 2
  ordered: true
  processors:
    - wasm: {module_path: inplace.wasm}
output:
  file: {path: out.txt}
"#,
    );
    let run = ws.wafer(&["run", "ordered.yaml"]);
    run.code(0);
    assert_eq!(
        summary(&run),
        "pipeline ordered: received 10000, processed 10000, dropped 0, failed 0"
    );
    let written = std::fs::read_to_string(ws.path().join("out.txt")).unwrap();
    assert_eq!(written, format!("{first}{second}").to_uppercase());
}

#[test]
fn a_guest_whose_allocator_answers_one_address_keeps_its_copies() {
    // Shaped like Benthos' own Rust example built for wasm32-wasip1: every
    // `allocate` answers 1, and there is no `__heap_base`; its
    // `deallocate` traps if the host gives that pointer back.
    let ws = workspace();
    ws.copy_guest(wafer_guests::WAT_BENTHOS_DANGLING, "dangling.wat");
    ws.write(
        "dangling.yaml",
        "input: {stdin: {}}\npipeline: {processors: [{wasm: {module_path: dangling.wat}}]}\noutput: {stdout: {}}\n",
    );
    let run = ws.wafer_with_stdin(&["run", "dangling.yaml"], "a\nb\n");
    run.prints("a!\nb!");
    assert_eq!(
        summary(&run),
        "pipeline dangling: received 2, processed 2, dropped 0, failed 0"
    );
}

#[test]
fn a_host_call_from_a_start_section_fails_the_message_not_the_host() {
    let ws = workspace();
    ws.write(
        "early.wat",
        r#"(module
  (import "benthos_wasm" "v0_msg_as_bytes" (func $as_bytes (result i64)))
  (memory (export "memory") 1)
  (func $early (drop (call $as_bytes)))
  (start $early)
  (func (export "process")))"#,
    );
    ws.write(
        "early.yaml",
        "input: {stdin: {}}\npipeline: {processors: [{wasm: {module_path: early.wat}}]}\noutput: {stdout: {}}\non_error: drop\n",
    );
    let run = ws.wafer_with_stdin(&["run", "early.yaml"], "a\n");
    run.code(0)
        .stderr_has("called while the instance was being set up");
    assert_eq!(
        summary(&run),
        "pipeline early: received 1, processed 0, dropped 1, failed 1"
    );
}

#[test]
fn metadata_is_read_and_written_by_the_guest() {
    let ws = workspace();
    ws.write("in.txt", "x\n");
    ws.write(
        "meta.yaml",
        r#"
input:
  file: {paths: [in.txt]}
pipeline:
  processors:
    - wasm: {module_path: meta.wasm}
output:
  stdout: {}
"#,
    );
    // The file input sets `path`; the guest does not read it, but asks for
    // `name` (missing: empty) and writes `greeting`.
    ws.wafer(&["run", "meta.yaml"]).prints(":x");
}

/// A 10,000-message file with `trap` at line 5,000, through the trapping
/// guest under `on_error`; the run's output file and summary.
fn trap_among_many(on_error: &str) -> (Workspace, Run, String) {
    let ws = workspace();
    ws.write("in.txt", numbered(10_000, Some((5_000, "trap"))));
    ws.write(
        "trap.yaml",
        format!(
            r#"
input:
  file: {{paths: [in.txt]}}
pipeline:
  threads: 2
  ordered: true
  processors:
    - wasm: {{module_path: trap.wasm}}
output:
  file: {{path: out.txt}}
on_error: {on_error}
"#
        ),
    );
    let run = ws.wafer(&["run", "trap.yaml"]);
    let written = std::fs::read_to_string(ws.path().join("out.txt")).unwrap_or_default();
    (ws, run, written)
}

#[test]
fn a_trap_on_one_message_among_ten_thousand_loses_nothing_else() {
    let expected_louder = |i: usize| format!("m{i}{LOUD}");
    // continue (Benthos' default): the failed message goes on, unchanged.
    let (_ws, run, written) = trap_among_many("continue");
    run.code(0);
    assert_eq!(
        summary(&run),
        "pipeline trap: received 10000, processed 10000, dropped 0, failed 1"
    );
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines.len(), 10_000);
    assert_eq!(lines[5_000], "trap");
    for (i, line) in lines.iter().enumerate().filter(|(i, _)| *i != 5_000) {
        assert_eq!(*line, expected_louder(i));
    }
    // drop: counted, and gone.
    let (_ws, run, written) = trap_among_many("drop");
    run.code(0);
    assert_eq!(
        summary(&run),
        "pipeline trap: received 10000, processed 9999, dropped 1, failed 1"
    );
    assert_eq!(written.lines().count(), 9_999);
    assert!(!written.contains("trap"));
    // a dead-letter output gets it.
    let (ws, run, written) = trap_among_many("{output: {file: {path: dead.txt}}}");
    run.code(0);
    assert_eq!(
        summary(&run),
        "pipeline trap: received 10000, processed 9999, dropped 0, failed 1 (1 to the dead-letter output)"
    );
    assert_eq!(written.lines().count(), 9_999);
    let dead = std::fs::read_to_string(ws.path().join("dead.txt")).unwrap();
    assert_eq!(dead, "trap\n");
}

#[test]
fn a_guest_that_loops_or_breaks_the_abi_fails_only_its_message() {
    // `spin` loops until its time limit stops it; `oob` hands over a
    // pointer outside memory (a host-function error: flagged, as in
    // Benthos).
    for (guest, bad) in [("spin", "spin"), ("oob", "oob")] {
        let ws = workspace();
        ws.write("in.txt", format!("a\n{bad}\nb\n"));
        ws.write(
            "faults.yaml",
            format!(
                r#"
input:
  file: {{paths: [in.txt]}}
pipeline:
  threads: 1
  processors:
    - wasm:
        module_path: {guest}.wasm
        limits: {{max_execution_ms: 300}}
output:
  stdout: {{}}
on_error: drop
"#
            ),
        );
        let run = ws.wafer(&["run", "faults.yaml"]);
        run.prints(&format!("a{LOUD}\nb{LOUD}"));
        assert_eq!(
            summary(&run),
            "pipeline faults: received 3, processed 2, dropped 1, failed 1",
            "{guest}"
        );
        run.stderr_has("A processor failed on a message");
    }
}

/// `generate` → `guest` → drop, 100,000 messages, its memory capped at
/// 4 MiB: a guest that leaks even a few bytes a message hits the cap.
fn hundred_thousand_through(guest: &str) -> Run {
    let ws = workspace();
    ws.write(
        "flat.yaml",
        format!(
            r#"
input:
  generate:
    mapping: 'root = "a message of about one hundred bytes, long enough that a leak of it shows up quickly"'
    count: 100000
    interval: ""
pipeline:
  threads: 1
  processors:
    - wasm:
        module_path: {guest}.wasm
        limits: {{max_memory_bytes: 4194304}}
output:
  drop: {{}}
"#
        ),
    );
    ws.wafer(&["run", "flat.yaml"])
}

#[test]
fn guest_memory_stays_flat_over_a_hundred_thousand_messages() {
    for guest in ["louder", "tiny_upper", "inplace", "meta"] {
        let run = hundred_thousand_through(guest);
        run.code(0);
        assert_eq!(
            summary(&run),
            "pipeline flat: received 100000, processed 100000, dropped 0, failed 0",
            "{guest}"
        );
    }
    // The cap does catch a guest that grows: its messages fail, and the
    // others go on.
    let run = hundred_thousand_through("grow");
    run.code(0);
    let line = summary(&run);
    assert!(line.contains("processed 100000"), "{line}");
    assert!(!line.ends_with("failed 0"), "{line}");
}

#[test]
fn a_registry_pipeline_calls_a_registry_function() {
    let ws = workspace();
    ws.write("in.txt", "[1, 2]\n[40, 2]\nnot json\n");
    let pipeline = r#"  - name: sums
    kind: pipeline
    input: {file: {paths: [in.txt]}}
    pipeline: {threads: 1, processors: [{call: {function: math:add}}]}
    output: {file: {path: out.txt}}
    on_error: {output: {file: {path: dead.txt}}}
"#;
    ws.write(
        "_index.yaml",
        format!("{}{ADD_ENTRY}{pipeline}", header("math")),
    );
    let run = ws.wafer(&["run", "."]);
    run.code(0);
    assert_eq!(
        summary(&run),
        "pipeline math:sums: received 3, processed 2, dropped 0, failed 1 (1 to the dead-letter output)"
    );
    assert_eq!(
        std::fs::read_to_string(ws.path().join("out.txt")).unwrap(),
        "3\n42\n"
    );
    assert_eq!(
        std::fs::read_to_string(ws.path().join("dead.txt")).unwrap(),
        "not json\n"
    );
}

#[cfg(unix)]
#[test]
fn stopping_mid_stream_loses_nothing_acknowledged() {
    let ws = workspace();
    ws.write(
        "endless.yaml",
        r#"
input:
  generate: {mapping: 'root = "tick"', count: 0, interval: ""}
pipeline:
  threads: 2
  processors:
    - wasm: {module_path: louder.wasm}
output:
  file: {path: out.txt}
"#,
    );
    // Interrupted once messages flow: once the output wrote some.
    let out = ws.path().join("out.txt");
    let command = ws.command(&["run", "endless.yaml"]);
    let run = crate::util::interrupt_once(&["run", "endless.yaml"], command, || {
        std::fs::metadata(&out).is_ok_and(|file| file.len() > 0)
    });
    run.code(0);
    let line = summary(&run).to_string();
    let written = std::fs::read_to_string(&out).unwrap();
    let lines = written.lines().count();
    assert!(lines > 0);
    assert!(written.lines().all(|l| l == format!("tick{LOUD}")));
    // Every message the input produced was processed and written.
    assert_eq!(
        line,
        format!("pipeline endless: received {lines}, processed {lines}, dropped 0, failed 0")
    );
}

#[test]
fn the_example_pipeline_runs_as_the_readme_says() {
    let ws = Workspace::new();
    let args = ["run", "examples/pipelines/upper.yaml"];
    let mut command = ws.command(&args);
    command.current_dir(crate::util::repo_root());
    crate::util::run_with_stdin(&args, command, "hello\nworld\n").prints("HELLO\nWORLD");
}
