//! Registries and inputs written to hurt: each is refused with a clear
//! error, within bounded memory and without hanging.

use super::util::{ADD_ENTRY, Workspace, header};

/// A registry whose aliases repeat a 1 MB anchor 3,000 times (3 GB once
/// expanded) is refused before it is expanded, the file named.
#[test]
fn yaml_aliases_that_expand_past_the_bound_are_refused() {
    let ws = Workspace::new();
    let big = "x".repeat(1 << 20);
    let mut yaml = format!(
        "{}  - &e0 {{name: a, kind: env.variable, variable: \"{big}\"}}\n",
        header("h")
    );
    for _ in 0..2999 {
        yaml.push_str("  - *e0\n");
    }
    ws.write("reg/_index.yaml", &yaml);
    ws.wafer(&["check", "reg"])
        .code(1)
        .stdout_has("_index.yaml: it expands to more than the limit of 32.0 MiB (33554432 bytes) once its aliases are replaced");
    ws.wafer(&["call", "h:a", "-r", "reg"])
        .code(2)
        .stderr_has("expands to more than the limit");
}

/// A key written twice in one mapping would silently lose a value.
#[test]
fn a_key_written_twice_is_a_problem() {
    let ws = Workspace::new();
    let yaml = format!(
        "{}  - name: f\n    kind: function.wat\n    source: '(module (func (export \"f\")))'\n    method: f\n    method: g\n",
        header("h")
    );
    ws.write("reg/_index.yaml", yaml);
    ws.wafer(&["check", "reg", "--json"])
        .code(1)
        .stdout_has(r#""kind":"duplicate_key""#)
        .stdout_has(r#""field":"method""#);
}

/// Symbolic links that leave the registry folder are not followed: not to
/// `/` (which would walk the whole host), not to `/etc` (whose YAML is no
/// registry's business).
#[cfg(unix)]
#[test]
fn the_walk_stays_inside_the_registry_folder() {
    let ws = Workspace::new();
    ws.write(
        "reg/_index.yaml",
        format!(
            "{}  - name: e\n    kind: env.variable\n    variable: E\n",
            header("h")
        ),
    );
    std::os::unix::fs::symlink("/", ws.path().join("reg/root")).unwrap();
    std::os::unix::fs::symlink("/etc", ws.path().join("reg/etclink")).unwrap();
    // A link that stays inside is followed.
    std::fs::create_dir(ws.path().join("reg/inner")).unwrap();
    ws.write(
        "reg/inner/_index.yaml",
        format!(
            "{}  - name: e\n    kind: env.variable\n    variable: E\n",
            header("i")
        ),
    );
    std::os::unix::fs::symlink(ws.path().join("reg/inner"), ws.path().join("reg/alias")).unwrap();
    let run = ws.wafer(&["check", "reg"]);
    run.stdout_has("reg/root: a symbolic link to /, outside the registry folder")
        .stdout_has("reg/etclink: a symbolic link to /etc, outside the registry folder");
    assert!(!run.stdout.contains("/etc/"), "{}", run.stdout);
    // `inner` is read twice, through the folder and through the link.
    run.stdout_has("duplicate id");
}

#[test]
fn a_walk_is_bounded_in_depth() {
    let ws = Workspace::new();
    let deep = (0..20)
        .map(|i| format!("d{i}"))
        .collect::<Vec<_>>()
        .join("/");
    ws.write(
        &format!("reg/{deep}/_index.yaml"),
        format!(
            "{}  - name: e\n    kind: env.variable\n    variable: E\n",
            header("deep")
        ),
    );
    ws.write(
        "reg/_index.yaml",
        format!(
            "{}  - name: e\n    kind: env.variable\n    variable: E\n",
            header("h")
        ),
    );
    ws.wafer(&["check", "reg"])
        .code(0)
        .stdout_has("a folder deeper than 16 levels, not read");
}

/// Endless and non-regular files: refused where a regular file is needed,
/// capped where a stream is fine, and never waited on.
#[cfg(unix)]
#[test]
fn endless_and_special_files_are_refused_or_capped() {
    let ws = Workspace::new();
    ws.wafer(&["hash", "/dev/zero"])
        .fails(2, "/dev/zero is a device, not a regular file");
    ws.wafer(&["inspect", "/dev/zero"])
        .fails(2, "/dev/zero is a device, not a regular file");
    ws.wafer(&["exec", "/dev/zero"])
        .fails(2, "/dev/zero is a device, not a regular file");
    ws.wafer(&["hash", "."])
        .fails(2, ". is a directory, not a regular file");

    let yaml = format!(
        r#"{}{ADD_ENTRY}  - name: dev
    kind: fs.directory
    directory: /dev
  - name: zero
    kind: function.wasm
    fs: dev
    path: zero
    hash: sha256:{zeros}
    method: f
  - name: url-zero
    kind: function.wasm
    url: file:///dev/zero
    hash: sha256:{zeros}
    method: f
  - name: fifo
    kind: function.wat
    source: file://f.wat
    method: f
"#,
        header("h"),
        zeros = "0".repeat(64)
    );
    ws.write("reg/_index.yaml", yaml);
    let fifo = std::ffi::CString::new(
        ws.path()
            .join("reg/f.wat")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);

    let run = ws.wafer(&["check", "reg"]);
    run.code(1)
        .stdout_has("entry h:zero: field path: /dev/zero is a device, not a regular file")
        .stdout_has("entry h:fifo: field source: ")
        .stdout_has("f.wat is a FIFO, not a regular file");
    ws.wafer(&["call", "h:url-zero", "-r", "reg"]).fails(
        2,
        "file:///dev/zero: /dev/zero is a device, not a regular file",
    );

    ws.wafer(&["call", "h:add", "-r", "reg", "--args-file", "/dev/zero"])
        .fails(
            2,
            "/dev/zero is larger than the limit of 16777216 bytes (16.0 MiB)",
        );
}

/// Compiling time grows with a module's functions and body sizes: past the
/// entry's limits (or their defaults) it is refused before compiling.
#[test]
fn modules_past_the_compile_limits_are_refused_before_compiling() {
    let ws = Workspace::new();
    let many = "(func)".repeat(100_000);
    ws.write(
        "reg/many.wat",
        format!("(module {many} (func (export \"f\")))"),
    );
    let body = "i32.const 1 drop ".repeat(100);
    let yaml = format!(
        r#"{}  - name: many
    kind: function.wat
    source: file://many.wat
    method: f
  - name: long
    kind: function.wat
    source: '(module (func (export "f") {body}))'
    method: f
    limits:
      max_function_bytes: 100
"#,
        header("h")
    );
    ws.write("reg/_index.yaml", yaml);
    ws.wafer(&["check", "reg"])
        .code(1)
        .stdout_has("entry h:many: field limits.max_functions: the module holds 100001 functions, more than limits.max_functions = 75000")
        .stdout_has("entry h:long: field limits.max_function_bytes: the module holds a function body of 302 bytes, more than limits.max_function_bytes = 100");
}

/// Pool sizes the engine can never provide, or that refuse every call.
#[test]
fn impossible_pool_sizes_are_load_problems() {
    let ws = Workspace::new();
    let entry = |name: &str, pool: &str| {
        format!(
            "  - name: {name}\n    kind: function.wat\n    source: '(module (func (export \"f\")))'\n    method: f\n    pool: {pool}\n"
        )
    };
    let yaml = [
        header("h"),
        entry("huge", "{type: static, workers: 100000}"),
        entry("none", "{type: static, workers: 0}"),
        entry("empty", "{type: lazy, max_size: 0}"),
        entry("upside-down", "{type: adaptive, min_size: 8, max_size: 4}"),
        entry("floor", "{type: adaptive, min_size: 200}"),
    ]
    .concat();
    ws.write("reg/_index.yaml", yaml);
    ws.wafer(&["check", "reg"])
        .code(1)
        .stdout_has("entry h:huge: field pool.workers: 100000 is more than the engine provides: 4000 instances at once")
        .stdout_has("entry h:none: field pool.workers: must be at least 1")
        .stdout_has("entry h:empty: field pool.max_size: must be at least 1")
        .stdout_has("entry h:upside-down: field pool.min_size: 8 is above pool.max_size (4)")
        .stdout_has("entry h:floor: field pool.min_size: 200 is above pool.max_size (100, its default)");
}

/// A time limit past what the clock can represent is no limit, not a crash.
#[test]
fn an_enormous_time_limit_is_accepted() {
    let ws = Workspace::new();
    let yaml = format!(
        "{}  - name: f\n    kind: function.wat\n    source: '(module (func (export \"f\") (result i32) i32.const 7))'\n    wit: \"f: func() -> s32;\"\n    method: f\n    limits: {{max_execution_ms: 18446744073709551615}}\n",
        header("h")
    );
    ws.write("_index.yaml", yaml);
    ws.wafer(&["call", "h:f"]).prints("7");
}

/// What `check` can know before the first call, it says: a folder that is
/// missing or is a file, a guest path that climbs out with `..`.
#[test]
fn check_validates_mount_folders_and_guest_paths() {
    let ws = Workspace::new();
    ws.write("reg/file.txt", "not a folder");
    let yaml = format!(
        r#"{}  - name: missing
    kind: fs.directory
    directory: nowhere
  - name: file
    kind: fs.directory
    directory: file.txt
  - name: here
    kind: fs.directory
    directory: .
  - name: f
    kind: function.wat
    source: '(module (func (export "f")))'
    method: f
    wasi:
      mounts:
        - {{fs: here, guest: "/x/../.."}}
        - {{fs: here, guest: "/data//in/./"}}
"#,
        header("h")
    );
    ws.write("reg/_index.yaml", yaml);
    ws.wafer(&["check", "reg"])
        .code(1)
        .stdout_has("entry h:missing: field directory: cannot open ")
        .stdout_has("entry h:file: field directory: ")
        .stdout_has("file.txt is not a folder")
        .stdout_has("entry h:f: field wasi.mounts[0].guest: `/x/../..` must not contain `..`");
    ws.wafer(&["exec", "x.wasm", "--mount", ".:/a/../b"])
        .fails(2, "--mount .:/a/../b: `/a/../b` must not contain `..`");
    ws.wafer(&["exec", "x.wasm", "--cwd", "relative"])
        .fails(2, "--cwd: `relative` must be an absolute guest path");
}

/// `cache clean` removes what wafer wrote, nothing else, and creates no
/// folder that was not there.
#[test]
fn cache_clean_removes_only_wafers_own_files() {
    let ws = Workspace::new();
    ws.wafer(&["cache", "clean"])
        .code(0)
        .stdout_has("nothing to clean: ");
    assert!(!ws.cache_dir().exists());
    ws.write("m.wat", "(module (func (export \"_start\")))");
    ws.wafer(&["exec", "m.wat"]).code(0);
    let notes = ws.write(".cache/compiled/notes.txt", "mine");
    ws.wafer(&["cache", "clean"])
        .code(0)
        .stdout_has("removed 1 files")
        .stdout_has("left 1 entries wafer did not write: ")
        .stdout_has("notes.txt");
    assert!(notes.exists());
}

/// Each of these says what is wrong and where.
#[test]
fn unclear_errors_are_clear() {
    let ws = Workspace::new();
    ws.write("empty/_index.yaml", "");
    ws.wafer(&["check", "empty"])
        .code(1)
        .stdout_has("_index.yaml: empty: expected version, namespace and entries");
    ws.write(
        "none/_index.yaml",
        "version: \"1.0\"\nnamespace: n\nentries: []\n",
    );
    ws.wafer(&["check", "none"])
        .code(1)
        .stdout_has("the registry files here declare no entries");
    ws.write("v2.wasm", b"\0asm\x02\0\0\0");
    ws.wafer(&["inspect", "v2.wasm"])
        .fails(2, "a WebAssembly binary of version 2");
    ws.wafer(&["exec", "x.wasm", "--mount", ".:/x:rw", "--env", "=bar"])
        .fails(2, "--env =bar: expected NAME=VALUE with a name");
    ws.wafer(&["exec", "x.wasm", "--max-memory", "0"])
        .fails(2, "--max-memory: must be at least 1");
    ws.wafer(&["exec", "x.wasm", "--max-memory", "99999999999999999999999"])
        .fails(2, "`99999999999999999999999` is not a size like 64MiB");
    ws.wafer(&["bench", "x:y", "--warmup", "1e3ms"])
        .fails(2, "`1e3ms` is not a duration like 10s, 500ms or 1.5m");
    let command = |args: &[&str]| {
        let mut command = ws.command(args);
        command.env("WAFER_CACHE_DIR", "");
        super::util::Run::new(args, command.output().unwrap())
    };
    let run = command(&["cache", "dir"]);
    run.code(0);
    assert!(run.stdout.trim_end().ends_with("wafer"), "{}", run.stdout);
    ws.write("cachefile", "");
    let mut command = ws.command(&["cache", "clean"]);
    command.env("WAFER_CACHE_DIR", ws.path().join("cachefile"));
    super::util::Run::new(&["cache", "clean"], command.output().unwrap())
        .fails(1, "cachefile: is a file, not a folder");

    ws.write(
        "own/_index.yaml",
        format!(
            "{}  - name: f\n    kind: function.wat\n    source: '(module (func (export \"f\") (param i32)))'\n    wit: \"f: func(a: s32);\"\n    method: f\n  - name: broken\n    kind: function.wat\n",
            header("n")
        ),
    );
    let long = format!("x{}", "y".repeat(20_000));
    let run = ws.wafer(&["call", "n:f", &long, "-r", "own"]);
    run.code(2).stderr_has("is not JSON");
    assert!(
        run.stderr.len() < 500,
        "the argument is not echoed whole: {}",
        run.stderr.len()
    );
    let args = ["call", "n:f", "1", "-r", "own"];
    let mut command = ws.command(&args);
    command.env("WAFER_LOG", "warn");
    super::util::Run::new(&args, command.output().unwrap())
        .code(0)
        .stderr_has("Other entries of own/_index.yaml have problems");
}

/// Names from a module or a registry reach the terminal escaped: no screen
/// cleared, no title set, no line forged.
#[test]
fn control_characters_in_names_are_escaped() {
    let ws = Workspace::new();
    ws.write(
        "evil.wat",
        r#"(module (func (export "evil\1b[2J\1b]0;pwned\07\0dFAKE")) (func (export "a\0ab")))"#,
    );
    let run = ws.wafer(&["inspect", "evil.wat"]);
    run.code(0)
        .stdout_has(r"evil\u{1b}[2J\u{1b}]0;pwned\u{7}\rFAKE: func()")
        .stdout_has(r"a\nb: func()");
    assert!(
        !run.stdout.contains('\x1b') && !run.stdout.contains('\r'),
        "{:?}",
        run.stdout
    );
    assert!(
        !run.stdout.lines().any(|l| l.trim() == "b: func()"),
        "{}",
        run.stdout
    );

    let yaml = format!(
        "{}  - name: \"bad\\e[2Jname\"\n    kind: env.variable\n    variable: X\n  - name: f\n    kind: function.wat\n    source: '(module (func (export \"f\")))'\n    method: \"no\\rsuch\"\n",
        header("h")
    );
    ws.write("reg/_index.yaml", yaml);
    let run = ws.wafer(&["check", "reg"]);
    run.code(1)
        .stdout_has(r"bad\u{1b}[2Jname")
        .stdout_has(r"no\rsuch");
    assert!(
        !run.stdout.contains('\x1b') && !run.stdout.contains('\r'),
        "{:?}",
        run.stdout
    );
    let run = ws.wafer(&["call", "h:f", "-r", "reg"]);
    assert!(!run.stderr.contains('\r'), "{:?}", run.stderr);
}

// The library's own test server (only `serve` is used here).
#[allow(dead_code)]
#[path = "../../../wafer/src/sources/test_server.rs"]
mod test_server;

/// An unpinned URL (Dapr components) is asked again once its cached copy
/// is stale, and a new module on the server is then what runs.
#[test]
fn an_unpinned_url_is_revalidated_once_stale() {
    use std::sync::{Arc, Mutex};
    let hello = std::fs::read(wafer_guests::P1_HELLO).unwrap();
    let body = Arc::new(Mutex::new(hello));
    let served = body.clone();
    let addr = test_server::serve(move |_| {
        let body = served.lock().unwrap().clone();
        let etag = format!("\"{}\"", wafer::Sha256Hash::of(&body).hex());
        test_server::Response::ok("application/wasm", body).with_header("ETag", etag)
    });
    let ws = Workspace::new();
    ws.write(
        "prog.yaml",
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: prog\nspec:\n  type: bindings.wasm\n  version: v1\n  metadata:\n  - name: url\n    value: http://{addr}/prog.wasm\n"
        ),
    );
    ws.wafer(&["call", "prog", "you"]).prints("hello you");
    *body.lock().unwrap() = std::fs::read(wafer_guests::P1_ARGS).unwrap();
    // Within the freshness period the cached copy runs, without a request.
    ws.wafer(&["call", "prog", "you"]).prints("hello you");
    // As if the period had passed: the record says it was checked long ago.
    let urls = ws.cache_dir().join("urls");
    for record in std::fs::read_dir(&urls).unwrap() {
        let path = record.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let stale: String = text
            .lines()
            .map(|line| {
                if line.starts_with("checked ") {
                    "checked 0".into()
                } else {
                    line.to_string()
                }
            })
            .map(|line| line + "\n")
            .collect();
        std::fs::write(&path, stale).unwrap();
    }
    ws.wafer(&["call", "prog", "you"]).prints("prog\nyou");
}
