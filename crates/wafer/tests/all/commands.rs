//! `abi: wasi-command`: WASI programs (preview 1 modules and preview 2
//! components) run per call, Dapr's expectations, and guests that misbehave
//! on purpose. Every test runs each program built for both targets.

use std::path::PathBuf;
use std::sync::LazyLock;

use serde_json::json;
use wafer::{CommandInput, Error, Input, Registry, Runtime};

use super::util::{command_entry, dir_of};

/// Both builds of each program: (prefix, path of `echo`).
const TARGETS: [(&str, &str); 2] = [("p1", wafer_guests::P1_ECHO), ("p2", wafer_guests::P2_ECHO)];

/// Host folders the programs may mount: `data` (read-only, holds
/// `hello.txt`) and `out` (writable); `outside` is never mounted.
struct Folders {
    _root: tempfile::TempDir,
    data: PathBuf,
    out: PathBuf,
    outside: PathBuf,
}

static FOLDERS: LazyLock<Folders> = LazyLock::new(|| {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let out = root.path().join("out");
    let outside = root.path().join("outside");
    for dir in [&data, &out, &outside] {
        std::fs::create_dir(dir).unwrap();
    }
    std::fs::write(data.join("hello.txt"), "hello from the host\n").unwrap();
    std::fs::write(outside.join("secret.txt"), "not for guests\n").unwrap();
    Folders {
        _root: root,
        data,
        out,
        outside,
    }
});

/// Each program under `<target>_<program>`, plus variants with limits,
/// mounts, env and strict sandboxes; compiled on first use.
static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    let folders = &*FOLDERS;
    let mut yaml = format!(
        r#"version: "1.0"
namespace: t
entries:
  - name: p1
    kind: fs.directory
    directory: {p1:?}
  - name: p2
    kind: fs.directory
    directory: {p2:?}
  - name: data
    kind: fs.directory
    directory: {data:?}
  - name: out
    kind: fs.directory
    directory: {out:?}
  - name: token
    kind: env.variable
    variable: WAFER_TEST_VARIABLE_NEVER_SET
    default: s3cret
  - name: absent
    kind: env.variable
    variable: WAFER_TEST_VARIABLE_NEVER_SET
"#,
        p1 = dir_of(wafer_guests::P1_ECHO),
        p2 = dir_of(wafer_guests::P2_ECHO),
        data = folders.data.display().to_string(),
        out = folders.out.display().to_string(),
    );
    let fast = "    limits:\n      max_execution_ms: 100\n";
    let mounts = "    wasi:\n      cwd: /data\n      mounts:\n        - fs: data\n          guest: /data\n          read_only: true\n        - fs: out\n          guest: /out\n";
    for (target, echo) in TARGETS {
        let dir = dir_of(echo);
        let path = |program: &str| format!("{dir}/{program}.wasm");
        let mut add = |name: &str, program: &str, extra: &str| {
            yaml.push_str(&command_entry(
                &format!("{target}_{name}"),
                target,
                &path(program),
                extra,
            ));
        };
        for program in [
            "echo",
            "args",
            "hello",
            "exit_code",
            "read_file",
            "env_var",
            "connect",
            "clock_random",
            "stack_overflow",
            "unreachable",
            "stderr_then_fail",
        ] {
            add(program, program, "");
        }
        add("loop_forever", "loop_forever", fast);
        add(
            "memory_bomb",
            "memory_bomb",
            "    limits:\n      max_memory_bytes: 33554432\n",
        );
        add(
            "flood",
            "flood",
            "    limits:\n      max_output_bytes: 4096\n",
        );
        add("mounted_read", "read_file", mounts);
        add("mounted_write", "write_file", mounts);
        add("mounted_list", "list_dir", mounts);
        add("cwd", "env_var", mounts);
        add(
            "env_granted",
            "env_var",
            "    wasi:\n      env:\n        - id: token\n          name: TOKEN\n",
        );
        add(
            "env_required",
            "env_var",
            "    wasi:\n      env:\n        - id: absent\n          name: ABSENT\n          required: true\n",
        );
        add(
            "connect_granted",
            "connect",
            "    imports:\n      - name: wasi:sockets\n        allow: [\"127.0.0.1:*\"]\n",
        );
        add(
            "args_configured",
            "args",
            "    wasi:\n      args: [\"--verbose\"]\n",
        );
    }
    let registry = Registry::from_yaml("/commands.yaml", &yaml);
    assert!(registry.problems().is_empty(), "{:#?}", registry.problems());
    Runtime::new(registry).unwrap()
});

/// Runs `t:<name>`.
async fn run(name: &str, input: CommandInput) -> Result<wafer::CommandOutput, Error> {
    let output = RUNTIME
        .invoke(&format!("t:{name}"), Input::Program(input))
        .await?;
    Ok(output
        .into_program()
        .expect("a program answers with its run"))
}

/// Runs `t:<name>`, which must end with a non-zero exit status: what it
/// wrote, and the status.
async fn run_failing(name: &str, input: CommandInput) -> wafer::CommandOutput {
    let output = run(name, input).await.unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(output.exit_code, 0, "{name}: {}", text(&output.stdout));
    output
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

/// The host still serves after a guest misbehaved.
async fn still_serving(target: &str) {
    let out = run(&format!("{target}_echo"), CommandInput::new().stdin("ok"))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"ok");
}

#[tokio::test]
async fn stdin_comes_back_on_stdout() {
    let kib: Vec<u8> = (0..1024).map(|i| (i % 251) as u8).collect();
    for (target, _) in TARGETS {
        let out = run(
            &format!("{target}_echo"),
            CommandInput::new().stdin(kib.clone()),
        )
        .await
        .unwrap();
        assert_eq!(out.stdout, kib, "{target}");
        assert_eq!(out.exit_code, 0);
        assert!(out.stderr.is_empty());
    }
}

/// Dapr's own tests: `args` prints argv joined by newlines, with argv[0]
/// the module's file name without `.wasm`; `example` prints "hello " and
/// argv[1].
#[tokio::test]
async fn dapr_programs_behave_as_dapr_tests_expect() {
    for (target, _) in TARGETS {
        let args = format!("{target}_args");
        let out = run(&args, CommandInput::new()).await.unwrap();
        assert_eq!(text(&out.stdout), "args", "{target}");
        let out = run(&args, CommandInput::new().args(["1", "2"]))
            .await
            .unwrap();
        assert_eq!(text(&out.stdout), "args\n1\n2", "{target}");
        let out = run(
            &format!("{target}_args_configured"),
            CommandInput::new().args(["x"]),
        )
        .await
        .unwrap();
        assert_eq!(text(&out.stdout), "args\n--verbose\nx", "{target}");
        let out = run(
            &format!("{target}_hello"),
            CommandInput::new().args(["salaboy"]),
        )
        .await
        .unwrap();
        assert_eq!(text(&out.stdout), "hello salaboy", "{target}");
    }
}

#[tokio::test]
async fn json_calls_pass_arguments_and_answer_streams_and_status() {
    let answer = RUNTIME
        .call("t:p1_args", vec![json!("a b"), json!(7)])
        .await
        .unwrap();
    assert_eq!(
        answer,
        json!({"stdout": "args\na b\n7", "stderr": "", "exit_code": 0})
    );
}

#[tokio::test]
async fn an_endless_loop_is_stopped_by_its_limit() {
    for (target, _) in TARGETS {
        let err = run(&format!("{target}_loop_forever"), CommandInput::new())
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::DeadlineExceeded { limit_ms: 100, .. }),
            "{target}: {err}"
        );
        still_serving(target).await;
    }
}

#[tokio::test]
async fn a_memory_bomb_fails_at_the_memory_limit() {
    for (target, _) in TARGETS {
        let err = run(&format!("{target}_memory_bomb"), CommandInput::new())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::MemoryLimit {
                    limit_bytes: 33554432,
                    ..
                }
            ),
            "{target}: {err}"
        );
        assert!(err.to_string().contains("limits.max_memory_bytes"), "{err}");
        still_serving(target).await;
    }
}

#[tokio::test]
async fn a_stdout_flood_fails_at_the_output_limit_keeping_the_first_bytes() {
    for (target, _) in TARGETS {
        let err = run(&format!("{target}_flood"), CommandInput::new())
            .await
            .unwrap_err();
        let Error::OutputLimit {
            limit_bytes,
            output,
            ..
        } = &err
        else {
            panic!("{target}: {err}");
        };
        assert_eq!(*limit_bytes, 4096);
        assert_eq!(output.stdout.len() + output.stderr.len(), 4096, "{target}");
        assert!(output.stdout.iter().all(|&b| b == b'x'), "{target}");
        still_serving(target).await;
    }
}

#[tokio::test]
async fn traps_fail_only_their_own_call() {
    for (target, _) in TARGETS {
        for program in ["stack_overflow", "unreachable"] {
            let err = run(&format!("{target}_{program}"), CommandInput::new())
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::Trap { .. }),
                "{target} {program}: {err}"
            );
        }
        still_serving(target).await;
    }
}

#[tokio::test]
async fn a_non_zero_exit_is_data_with_what_was_written() {
    // Preview 1 reports any code; preview 2 only success or failure.
    for (target, code) in [("p1", 3), ("p2", 1)] {
        let output = run_failing(
            &format!("{target}_exit_code"),
            CommandInput::new().args(["3"]),
        )
        .await;
        assert_eq!(output.exit_code, code, "{target}");
        assert_eq!(text(&output.stdout), "exiting\n");
        assert_eq!(text(&output.stderr), "bye\n");
        let output = run_failing(&format!("{target}_stderr_then_fail"), CommandInput::new()).await;
        assert_eq!(text(&output.stdout), "partial output\n");
        assert_eq!(text(&output.stderr), "something broke\n");
    }
}

#[tokio::test]
async fn proc_exit_from_a_wat_program_reports_its_code() {
    let yaml = format!(
        "version: \"1.0\"\nnamespace: t\nentries:\n  - name: exit\n    kind: function.wat\n    source: file://{}\n    abi: wasi-command\n",
        wafer_guests::WAT_P1_EXIT
    );
    let runtime = Runtime::new(Registry::from_yaml("/exit.yaml", &yaml)).unwrap();
    let output = runtime
        .invoke("t:exit", Input::Program(CommandInput::new()))
        .await
        .unwrap()
        .into_program()
        .unwrap();
    assert_eq!((output.exit_code, text(&output.stdout)), (3, "bye\n"));
}

#[tokio::test]
async fn nothing_of_the_host_is_readable_without_a_mount() {
    let outside = FOLDERS.outside.join("secret.txt").display().to_string();
    for (target, _) in TARGETS {
        for path in ["/etc/passwd", outside.as_str(), "secret.txt"] {
            let output = run_failing(
                &format!("{target}_read_file"),
                CommandInput::new().args([path]),
            )
            .await;
            assert!(output.stdout.is_empty(), "{target} read {path}");
        }
    }
}

#[tokio::test]
async fn mounts_expose_only_their_folder_and_enforce_read_only() {
    for (target, _) in TARGETS {
        let read = format!("{target}_mounted_read");
        let out = run(&read, CommandInput::new().args(["/data/hello.txt"]))
            .await
            .unwrap();
        assert_eq!(text(&out.stdout), "hello from the host\n", "{target}");
        for escape in ["/data/../outside/secret.txt", "/data/../../etc/passwd"] {
            let output = run_failing(&read, CommandInput::new().args([escape])).await;
            assert!(output.stdout.is_empty(), "{target} {escape}");
        }
        let write = format!("{target}_mounted_write");
        run_failing(
            &write,
            CommandInput::new().args(["/data/hello.txt", "overwritten"]),
        )
        .await;
        assert_eq!(
            std::fs::read_to_string(FOLDERS.data.join("hello.txt")).unwrap(),
            "hello from the host\n"
        );
        let file = format!("/out/{target}.txt");
        run(&write, CommandInput::new().args([file.as_str(), "written"]))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(FOLDERS.out.join(format!("{target}.txt"))).unwrap(),
            "written"
        );
        let out = run(
            &format!("{target}_mounted_list"),
            CommandInput::new().args(["/data"]),
        )
        .await
        .unwrap();
        assert_eq!(text(&out.stdout), "hello.txt\n", "{target}");
    }
}

#[tokio::test]
async fn the_working_directory_is_passed_as_pwd() {
    for (target, _) in TARGETS {
        let out = run(&format!("{target}_cwd"), CommandInput::new().args(["PWD"]))
            .await
            .unwrap();
        assert_eq!(text(&out.stdout), "/data\n", "{target}");
    }
}

#[tokio::test]
async fn only_granted_environment_variables_are_seen() {
    // Preview 1 reports the program's code 2; preview 2 only failure.
    for (target, code) in [("p1", 2), ("p2", 1)] {
        let output = run_failing(
            &format!("{target}_env_var"),
            CommandInput::new().args(["HOME"]),
        )
        .await;
        assert_eq!(output.exit_code, code, "{target}");
        let out = run(&format!("{target}_env_var"), CommandInput::new())
            .await
            .unwrap();
        assert!(out.stdout.is_empty(), "{target}: {}", text(&out.stdout));
        let out = run(
            &format!("{target}_env_granted"),
            CommandInput::new().args(["TOKEN"]),
        )
        .await
        .unwrap();
        assert_eq!(text(&out.stdout), "s3cret\n");
        let err = run(&format!("{target}_env_required"), CommandInput::new())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Sandbox { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("ABSENT") && message.contains("t:absent"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn sockets_connect_only_when_granted_and_allowed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    for (target, _) in TARGETS {
        let output = run_failing(
            &format!("{target}_connect"),
            CommandInput::new().args([address.as_str()]),
        )
        .await;
        assert_eq!(output.exit_code, 1, "{target}");
    }
    // Preview 1 has no sockets; a granted preview 2 program connects.
    let out = run(
        "p2_connect_granted",
        CommandInput::new().args([address.as_str()]),
    )
    .await
    .unwrap();
    assert_eq!(text(&out.stdout), "connected\n");
    run_failing(
        "p2_connect_granted",
        CommandInput::new().args(["10.0.0.1:80"]),
    )
    .await;
}

#[tokio::test]
async fn a_module_importing_what_the_host_lacks_is_refused_naming_it() {
    let yaml = r#"version: "1.0"
namespace: t
entries:
  - name: needs_db
    kind: function.wat
    abi: wasi-command
    source: |
      (module
        (import "acme_db" "query" (func))
        (func (export "_start")))
"#;
    let runtime = Runtime::new(Registry::from_yaml("/needs.yaml", yaml)).unwrap();
    let err = runtime.function("t:needs_db").await.err().unwrap();
    assert!(matches!(err, Error::Refused { .. }), "{err}");
    assert!(err.to_string().contains("acme_db::query"), "{err}");
}
