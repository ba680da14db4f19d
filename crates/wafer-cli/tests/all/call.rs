//! `wafer call`: results on stdout, one error line on stderr, exit codes.

use super::util::{Workspace, header, repo_root};

const SEED_ANSWER_INLINE: &str = r#"  - name: answer
    kind: function.wat
    source: |
      (module
        (func (export "answer") (result i32)
          i32.const 42
        )
      )
    wit: |
      answer: func() -> s32;
    method: answer
    pool:
      type: inline
"#;

const SEED_ANSWER_FILE: &str = r#"  - name: answer_file
    kind: function.wat
    source: file://answer.wat
    wit: |
      answer: func() -> s32;
    method: answer
    pool:
      type: inline
"#;

#[test]
fn quickstart_runs_from_the_repository() {
    let ws = Workspace::new();
    let registry = repo_root().join("examples/quickstart");
    let registry = registry.to_str().unwrap();
    ws.wafer(&["call", "quickstart:add", "2", "40", "--registry", registry])
        .prints("42");
    ws.wafer(&["call", "quickstart:answer", "-r", registry])
        .prints("42");
}

#[test]
fn seed_answer_entry_works_inline_and_from_a_file() {
    let ws = Workspace::new();
    ws.write(
        "reg/_index.yaml",
        format!("{}{SEED_ANSWER_INLINE}{SEED_ANSWER_FILE}", header("app")),
    );
    ws.write(
        "reg/answer.wat",
        "(module\n(func (export \"answer\") (result i32)\ni32.const 42\n)\n)\n",
    );
    ws.wafer(&["call", "app:answer", "--registry", "reg"])
        .prints("42");
    ws.wafer(&["call", "app:answer_file", "--registry", "reg"])
        .prints("42");
}

/// A registry with the P2_TYPES component under `t:<method>` names.
fn types_workspace(functions: &[(&str, &str, &str)]) -> Workspace {
    let ws = Workspace::new();
    let hash = ws.copy_guest(wafer_guests::P2_TYPES, "wasm/types.wasm");
    let mut yaml = header("t");
    yaml.push_str("  - name: wasm\n    kind: fs.directory\n    directory: wasm\n");
    for (name, method, extra) in functions {
        yaml.push_str(&format!(
            "  - name: {name}\n    kind: function.wasm\n    fs: wasm\n    path: /types.wasm\n    hash: {hash}\n    method: {method:?}\n{extra}"
        ));
    }
    ws.write("_index.yaml", yaml);
    ws
}

#[test]
fn arguments_from_the_command_line_a_file_or_stdin() {
    let ws = types_workspace(&[("user", "types#echo-user", "")]);
    let user = r#"{"id":7,"name":"Ann","tags":["a"],"email":null,"active":true}"#;
    ws.wafer(&["call", "t:user", user]).prints(user);
    ws.write("args.json", format!("[{user}]"));
    ws.wafer(&["call", "t:user", "--args-file", "args.json"])
        .prints(user);
    ws.wafer_with_stdin(
        &["call", "t:user", "--args-file", "-"],
        &format!("[{user}]"),
    )
    .prints(user);
    ws.wafer(&["call", "t:user", user, "--pretty"])
        .stdout_has("\n  \"id\": 7");
}

#[test]
fn method_may_name_an_interface_short_or_fully_qualified() {
    let ws = types_workspace(&[
        ("short", "types#greet", ""),
        ("full", "wafer:test/types#greet", ""),
        ("versioned", "wafer:test/types@0.1.0#greet", ""),
        ("root", "add", ""),
    ]);
    for id in ["t:short", "t:full", "t:versioned"] {
        ws.wafer(&["call", id, "\"x\""]).prints("\"hello, x\"");
    }
    ws.wafer(&["call", "t:root", "-5", "3"]).prints("-2");
}

#[test]
fn guest_error_result_is_a_successful_call() {
    let ws = types_workspace(&[("divide", "types#divide", "")]);
    ws.wafer(&["call", "t:divide", "1", "0"])
        .prints(r#"{"err":"division by zero"}"#);
    ws.wafer(&["call", "t:divide", "9", "3"])
        .prints(r#"{"ok":3}"#);
}

#[test]
fn guest_output_goes_to_the_log_not_to_stdout() {
    let ws = types_workspace(&[("greet", "types#greet", "")]);
    let run = ws.wafer(&["call", "t:greet", "\"bob\""]);
    run.prints("\"hello, bob\"")
        .stderr_has("greeting bob")
        .stderr_has("t:greet")
        .stderr_has("a line on stderr");
    let quiet = ws.wafer(&["-q", "call", "t:greet", "\"bob\""]);
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
}

/// A guest's log lines cannot move the cursor or retitle the terminal.
#[test]
fn control_characters_in_guest_output_are_escaped_in_the_log() {
    let ws = types_workspace(&[("greet", "types#greet", "")]);
    let run = ws.wafer(&["call", "t:greet", r#""a\rFAKE\u001b]0;pwned\u0007""#]);
    run.code(0)
        .stderr_has(r"greeting a\rFAKE\u{1b}]0;pwned\u{7}");
    assert!(
        !run.stderr.contains('\r') && !run.stderr.contains('\u{7}'),
        "{:?}",
        run.stderr
    );
}

#[test]
fn guest_output_over_the_cap_is_dropped_with_a_warning() {
    let ws = types_workspace(&[("flood", "types#flood", "")]);
    let run = ws.wafer(&["call", "t:flood", "2000"]);
    run.prints("200000")
        .stderr_has("dropped_bytes=134464")
        .stderr_has("Guest output over the log cap");
    let logged_lines = run
        .stderr
        .lines()
        .filter(|l| l.contains("xxxxxxxxxx"))
        .count();
    assert_eq!(
        logged_lines, 656,
        "64 KiB: 655 whole 100-byte lines and the 36-byte start of the next"
    );
}

#[test]
fn bad_arguments_exit_2_naming_the_path_and_type() {
    let ws = types_workspace(&[("user", "types#echo-user", ""), ("add", "add", "")]);
    ws.wafer(&[
        "call",
        "t:user",
        r#"{"id":1,"name":"A","tags":["x",3],"active":true}"#,
    ])
    .fails(
        2,
        "t:user: args[0] (u).tags[1]: expected string, found number 3",
    );
    ws.wafer(&["call", "t:user", r#"{"id":1,"tags":[],"active":true}"#])
        .fails(2, "args[0] (u).name: missing field");
    ws.wafer(&["call", "t:add", "1"])
        .fails(2, "expected 2 argument(s) (a: s32, b: s32), found 1");
    ws.wafer(&["call", "t:add", "1", "hello"])
        .fails(2, "args[1]: `hello` is not JSON");
    ws.write("bad.json", "{\"not\": \"an array\"}");
    ws.wafer(&["call", "t:add", "--args-file", "bad.json"])
        .fails(2, "expected a JSON array");
    ws.wafer(&["call", "t:nope"])
        .fails(2, "no function t:nope in the registry");
    ws.wafer(&["call", "t:wasm"])
        .fails(2, "t:wasm is a fs.directory entry, not a function");
    ws.wafer(&["call", "t:add", "1", "2", "--registry", "missing"])
        .fails(2, "missing: cannot read registry");
}

#[test]
fn traps_and_limits_fail_the_call_with_exit_1() {
    let ws = types_workspace(&[
        ("boom", "types#boom", ""),
        (
            "spin",
            "types#spin",
            "    limits:\n      max_execution_ms: 50\n",
        ),
    ]);
    ws.wafer(&["call", "t:boom"]).fails(
        1,
        "t:boom: guest trapped: wasm trap: wasm `unreachable` instruction executed",
    );
    ws.wafer(&["call", "t:spin"])
        .fails(1, "t:spin: stopped after limits.max_execution_ms = 50 ms");
}

#[test]
fn misbehaving_wat_guests_fail_clearly() {
    let ws = Workspace::new();
    // Only the spinner's limit is short: stopping it is the point.
    let entry = |name: &str, file: &str, method: &str, limit_ms: u32| {
        format!(
            "  - name: {name}\n    kind: function.wat\n    source: file://{file}\n    method: {method}\n    limits:\n      max_execution_ms: {limit_ms}\n"
        )
    };
    let yaml = [
        header("w"),
        entry("trap", wafer_guests::WAT_TRAP, "trap", 10_000),
        entry("spin", wafer_guests::WAT_SPIN, "spin", 30),
        entry("overflow", wafer_guests::WAT_OVERFLOW, "overflow", 10_000),
    ]
    .concat();
    ws.write("_index.yaml", yaml);
    ws.wafer(&["call", "w:trap"])
        .fails(1, "w:trap: guest trapped");
    ws.wafer(&["call", "w:spin"])
        .fails(1, "max_execution_ms = 30 ms");
    ws.wafer(&["call", "w:overflow", "0"])
        .fails(1, "call stack exhausted");
}

#[test]
fn refused_entries_say_why_when_called() {
    let ws = Workspace::new();
    ws.write("wasm/notwasm.wasm", "hello, I am text");
    let text_hash = wafer::Sha256Hash::of(b"hello, I am text");
    let zero_hash = format!("sha256:{}", "0".repeat(64));
    let yaml = [
        header("r"),
        "  - name: wasm\n    kind: fs.directory\n    directory: ./wasm\n".into(),
        format!("  - name: notwasm\n    kind: function.wasm\n    fs: wasm\n    path: /notwasm.wasm\n    hash: {text_hash}\n    method: run\n"),
        format!("  - name: pinned\n    kind: function.wasm\n    fs: wasm\n    path: /notwasm.wasm\n    hash: {zero_hash}\n    method: run\n"),
        "  - name: badwat\n    kind: function.wat\n    source: '(module (func (export \"f\") (result i32) i32.const))'\n    method: f\n".into(),
    ]
    .concat();
    ws.write("_index.yaml", yaml);
    ws.wafer(&["call", "r:notwasm"])
        .fails(2, "entry r:notwasm: field path:")
        .stderr_has("is not a WebAssembly binary");
    ws.wafer(&["call", "r:pinned"])
        .fails(2, "entry r:pinned: field hash: sha256 mismatch");
    ws.wafer(&["call", "r:badwat"])
        .fails(2, "entry r:badwat: field source: WAT does not parse");
}

/// Starts `wafer call ID` on a guest that never returns, interrupts it as
/// a terminal would once stderr shows `ready`, and checks it stopped with
/// exit 130.
#[cfg(unix)]
fn interrupt(ws: &Workspace, id: &str, args: &[&str], ready: &str) {
    let call: Vec<&str> = ["call", id].iter().chain(args).copied().collect();
    let mut command = ws.command(&call);
    command.env("WAFER_LOG", "warn,wafer=debug");
    let run = super::util::interrupt_when(&call, command, ready);
    run.fails(130, &format!("{id}: interrupted"));
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_a_running_guest_on_a_fiber() {
    let ws = types_workspace(&[(
        "misbehave",
        "types#misbehave",
        "    limits:\n      max_execution_ms: 600000\n",
    )]);
    interrupt(&ws, "t:misbehave", &["\"spin\""], "spinning");
}

/// A guest asleep in a host call runs no code for an epoch tick to stop.
#[cfg(unix)]
#[test]
fn ctrl_c_stops_a_guest_waiting_in_a_host_call() {
    let ws = types_workspace(&[(
        "sleep",
        "types#sleep-ms",
        "    limits:\n      max_execution_ms: 600000\n",
    )]);
    interrupt(&ws, "t:sleep", &["500000"], "sleeping");
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_a_running_synchronous_guest() {
    let ws = Workspace::new();
    ws.write(
        "_index.yaml",
        format!(
            "{}  - name: spin\n    kind: function.wat\n    source: file://{}\n    method: spin\n    limits:\n      max_execution_ms: 600000\n",
            header("w"),
            wafer_guests::WAT_SPIN
        ),
    );
    // A guest without imports cannot say it runs: once it is compiled the
    // call starts, and an interrupt from then on stops it at its first
    // epoch tick, whether it is already spinning or about to.
    interrupt(&ws, "w:spin", &[], "Compiled.");
}
