//! WASI programs from the command line: `wafer call` on `wasi-command`
//! entries, `wafer exec`, `wafer compile` and `wafer cache`.

use super::util::{Workspace, header};

/// A workspace whose registry runs `programs` (p1 builds) as
/// `p:<name>`, each copied to `bin/<name>.wasm`.
fn programs(programs: &[(&str, &str)]) -> Workspace {
    let ws = Workspace::new();
    let mut yaml = format!(
        "{}  - name: bin\n    kind: fs.directory\n    directory: ./bin\n",
        header("p")
    );
    for (name, guest) in programs {
        let hash = ws.copy_guest(guest, &format!("bin/{name}.wasm"));
        yaml.push_str(&format!(
            "  - name: {name}\n    kind: function.wasm\n    fs: bin\n    path: {name}.wasm\n    hash: {hash}\n    abi: wasi-command\n"
        ));
    }
    ws.write("_index.yaml", yaml);
    ws
}

#[test]
fn call_passes_args_and_stdin_and_prints_stdout_unchanged() {
    let ws = programs(&[
        ("args", wafer_guests::P1_ARGS),
        ("echo", wafer_guests::P1_ECHO),
    ]);
    let run = ws.wafer(&["call", "p:args", "one two", "-3"]);
    run.code(0);
    assert_eq!(run.stdout, "args\none two\n-3");
    let run = ws.wafer(&["call", "p:echo", "--stdin", "no newline added"]);
    assert_eq!(run.stdout, "no newline added");
    let run = ws.wafer_with_stdin(&["call", "p:echo", "--stdin-file", "-"], "piped\n");
    assert_eq!(run.stdout, "piped\n");
    ws.write("input.txt", "from a file");
    let run = ws.wafer(&["call", "p:echo", "--stdin-file", "input.txt"]);
    assert_eq!(run.stdout, "from a file");
}

#[test]
fn call_exits_with_the_programs_status_and_keeps_its_output() {
    let ws = programs(&[("exit_code", wafer_guests::P1_EXIT_CODE)]);
    let run = ws.wafer(&["call", "p:exit_code", "7"]);
    run.code(7).stderr_has("bye");
    assert_eq!(run.stdout, "exiting\n");
}

#[test]
fn call_refuses_stdin_for_typed_functions() {
    let ws = Workspace::new();
    ws.wafer(&[
        "call",
        "quickstart:add",
        "1",
        "2",
        "--stdin",
        "x",
        "--registry",
        &super::util::repo_root()
            .join("examples/quickstart")
            .display()
            .to_string(),
    ])
    .fails(2, "--stdin and --stdin-file are for WASI programs");
}

#[test]
fn exec_runs_a_program_with_stdio_passed_through() {
    let ws = Workspace::new();
    ws.copy_guest(wafer_guests::P1_HELLO, "hello.wasm");
    ws.wafer(&["exec", "hello.wasm", "--", "salaboy"])
        .prints("hello salaboy");
    ws.copy_guest(wafer_guests::P2_ECHO, "echo.wasm");
    let run = ws.wafer_with_stdin(&["exec", "echo.wasm"], "through stdin\n");
    assert_eq!(run.stdout, "through stdin\n");
    ws.copy_guest(wafer_guests::P1_EXIT_CODE, "exit.wasm");
    ws.wafer(&["exec", "exit.wasm", "--", "5"]).code(5);
}

#[test]
fn exec_grants_nothing_unless_a_flag_does() {
    let ws = Workspace::new();
    ws.copy_guest(wafer_guests::P1_ENV_VAR, "env.wasm");
    ws.copy_guest(wafer_guests::P1_READ_FILE, "read.wasm");
    ws.copy_guest(wafer_guests::P1_WRITE_FILE, "write.wasm");
    ws.write("data/note.txt", "mounted\n");
    // The host's own environment (HOME, PATH...) never reaches the guest.
    let run = ws.wafer(&["exec", "env.wasm"]);
    run.code(0);
    assert_eq!(run.stdout, "");
    ws.wafer(&["exec", "env.wasm", "--env", "GREETING=hi"])
        .prints("GREETING=hi");
    ws.wafer(&["exec", "read.wasm", "--", "/etc/passwd"])
        .code(1);
    ws.wafer(&[
        "exec",
        "read.wasm",
        "--mount",
        "data:/data:ro",
        "--",
        "/data/note.txt",
    ])
    .prints("mounted");
    ws.wafer(&[
        "exec",
        "write.wasm",
        "--mount",
        "data:/data:ro",
        "--",
        "/data/note.txt",
        "x",
    ])
    .code(1);
    ws.wafer(&[
        "exec",
        "write.wasm",
        "--mount",
        "data:/data",
        "--",
        "/data/new.txt",
        "x",
    ])
    .code(0);
    assert_eq!(
        std::fs::read_to_string(ws.path().join("data/new.txt")).unwrap(),
        "x"
    );
}

#[test]
fn exec_limits_stop_misbehaving_programs() {
    let ws = Workspace::new();
    ws.copy_guest(wafer_guests::P1_LOOP_FOREVER, "loop.wasm");
    ws.copy_guest(wafer_guests::P1_FLOOD, "flood.wasm");
    ws.copy_guest(wafer_guests::P2_MEMORY_BOMB, "bomb.wasm");
    ws.wafer(&["exec", "loop.wasm", "--timeout-ms", "50"])
        .fails(1, "limits.max_execution_ms = 50 ms");
    let run = ws.wafer(&["exec", "flood.wasm", "--max-output", "1KiB"]);
    run.code(1)
        .stderr_has("limits.max_output_bytes = 1024 bytes");
    assert_eq!(run.stdout.len(), 1024);
    ws.wafer(&["exec", "bomb.wasm", "--max-memory", "16MiB"])
        .fails(1, "limits.max_memory_bytes = 16777216 bytes");
    ws.write("not.wasm", "<html></html>");
    ws.wafer(&["exec", "not.wasm"])
        .fails(2, "not a loadable WebAssembly binary");
}

/// A program blocked reading stdin runs no guest code, so no epoch tick
/// sees the interrupt; it is stopped all the same.
#[cfg(unix)]
#[test]
fn ctrl_c_stops_a_program_waiting_for_stdin() {
    let ws = Workspace::new();
    ws.copy_guest(wafer_guests::P1_ECHO, "echo.wasm");
    let args = ["exec", "echo.wasm", "--timeout-ms", "600000"];
    let mut command = ws.command(&args);
    // stdin stays open (a pipe nobody writes to): the program waits on it.
    command
        .stdin(std::process::Stdio::piped())
        .env("WAFER_LOG", "warn,wafer=debug");
    // Compiled means the program starts now; an interrupt from then on
    // stops it, before or while it waits.
    let run = super::util::interrupt_when(&args, command, "Compiled.");
    run.fails(130, "interrupted");
}

#[test]
fn call_takes_a_programs_arguments_from_a_file_too() {
    let ws = programs(&[("args", wafer_guests::P1_ARGS)]);
    ws.write("args.json", r#"["a b", 7]"#);
    let run = ws.wafer(&["call", "p:args", "--args-file", "args.json"]);
    assert_eq!(run.stdout, "args\na b\n7");
}

#[test]
fn compile_fills_the_cache_and_a_second_start_compiles_nothing() {
    let ws = programs(&[
        ("args", wafer_guests::P1_ARGS),
        ("echo", wafer_guests::P2_ECHO),
    ]);
    ws.wafer(&["compile"])
        .stdout_has("2 functions: 2 compiled, 0 already in the cache");
    ws.wafer(&["compile"])
        .stdout_has("2 functions: 0 compiled, 2 already in the cache");
    ws.wafer(&["-v", "call", "p:args"]).code(0);
    ws.wafer(&["cache", "clean"]).stdout_has("removed 2 files");
    ws.wafer(&["compile", "--no-cache"])
        .fails(2, "compiling into no cache keeps nothing");
    ws.wafer(&["compile"])
        .stdout_has("2 functions: 2 compiled, 0 already in the cache");
    let dir = ws.cache_dir().display().to_string();
    ws.wafer(&["cache", "dir"]).prints(&dir);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ws.cache_dir())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}

/// A program's arguments are argv entries as written, for bench as for call.
#[test]
fn bench_passes_a_programs_arguments_as_written() {
    let ws = programs(&[("args", wafer_guests::P1_ARGS)]);
    let run = ws.wafer(&[
        "bench",
        "p:args",
        "args",
        "two words",
        "--calls",
        "5",
        "--warmup",
        "0ms",
        "--json",
    ]);
    run.code(0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["ok"], 5, "{report}");
}

/// WAT of a core module runs like its binary.
#[test]
fn exec_runs_wat_programs() {
    let ws = Workspace::new();
    std::fs::copy(wafer_guests::WAT_P1_EXIT, ws.path().join("p1_exit.wat")).unwrap();
    let run = ws.wafer(&["exec", "p1_exit.wat"]);
    run.code(3);
    assert_eq!(run.stdout, "bye\n");
}

/// Statuses from 126 to 255 reach the shell as they are; one it cannot
/// carry exits 255 and says so.
#[test]
fn every_exit_status_a_shell_can_carry_is_passed_on() {
    let ws = Workspace::new();
    ws.copy_guest(wafer_guests::P1_EXIT_CODE, "exit.wasm");
    ws.wafer(&["exec", "exit.wasm", "--", "200"]).code(200);
    ws.wafer(&["exec", "exit.wasm", "--", "300"])
        .code(255)
        .stderr_has("the program exited with status 300, which no exit code can carry");
}

/// Output that cannot be written fails the command; a reader that went
/// away (`| head`) ends it quietly.
#[cfg(unix)]
#[test]
fn exec_fails_when_its_output_cannot_be_written() {
    let ws = Workspace::new();
    ws.copy_guest(wafer_guests::P1_ARGS, "args.wasm");
    let args = ["exec", "args.wasm", "--", "a"];
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let output = ws.command(&args).stdout(full).output().unwrap();
    let run = super::util::Run::new(&args, output);
    run.code(1)
        .stderr_has("cannot write the program's output: No space left on device");

    ws.copy_guest(wafer_guests::P1_FLOOD, "flood.wasm");
    let args = ["exec", "flood.wasm"];
    let mut child = ws.command(&args).spawn().unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let run = super::util::Run::new(&args, output);
    run.code(0);
    assert_eq!(run.stderr, "", "a closed pipe is a quiet end");
}

#[test]
fn pretty_is_refused_for_a_program_instead_of_ignored() {
    let ws = programs(&[("args", wafer_guests::P1_ARGS)]);
    ws.wafer(&["call", "p:args", "--pretty"])
        .fails(2, "--pretty formats a typed function's JSON result");
}
