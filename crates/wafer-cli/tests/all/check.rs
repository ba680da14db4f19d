//! `wafer check`: every entry, every skipped file, every problem at once.

use super::util::{Workspace, header};

#[test]
fn every_mistake_in_a_registry_is_listed_together() {
    let ws = Workspace::new();
    let types_hash = ws.copy_guest(wafer_guests::P2_TYPES, "reg/wasm/types.wasm");
    let core_hash = ws.copy_guest(wafer_guests::CORE_CANONICAL, "reg/wasm/core.wasm");
    ws.write("reg/wasm/readme.wasm", "not a module");
    ws.write("reg/a/.keep", "");
    ws.write("reg/b/.keep", "");
    let text_hash = wafer::Sha256Hash::of(b"not a module");
    let zero = format!("sha256:{}", "0".repeat(64));
    let yaml = format!(
        r#"{header}  - name: wasm
    kind: fs.directory
    directory: wasm
  - name: lua
    kind: function.lua
    source: "print(1)"
  - name: typo
    kind: function.wat
    source: '(module)'
    methd: run
  - name: unpinned
    kind: function.wasm
    fs: wasm
    path: /types.wasm
    method: add
  - name: dup
    kind: fs.directory
    directory: a
  - name: dup
    kind: fs.directory
    directory: b
  - name: dangling
    kind: function.wasm
    fs: nowhere
    path: /types.wasm
    hash: {types_hash}
    method: add
  - name: mismatch
    kind: function.wasm
    fs: wasm
    path: /types.wasm
    hash: {zero}
    method: add
  - name: notwasm
    kind: function.wasm
    fs: wasm
    path: /readme.wasm
    hash: {text_hash}
    method: add
  - name: badwat
    kind: function.wat
    source: "(module (func $f (result i32) i32.const))"
    method: f
  - name: badhash
    kind: function.wasm
    fs: wasm
    path: /types.wasm
    hash: md5:abc
    method: add
  - name: badwit
    kind: function.wasm
    fs: wasm
    path: /core.wasm
    hash: {core_hash}
    method: add
    wit: "add: func(a: s32 b: s32) -> s32;"
  - name: noexport
    kind: function.wasm
    fs: wasm
    path: /types.wasm
    hash: {types_hash}
    method: types#missing
  - name: zerolimit
    kind: function.wat
    source: '(module (func (export "f")))'
    method: f
    limits:
      max_execution_ms: 0
  - name: badpool
    kind: function.wat
    source: '(module (func (export "f")))'
    method: f
    pool:
      type: lazy
      max_size: four
  - name: good
    kind: function.wasm
    fs: wasm
    path: /types.wasm
    hash: {types_hash}
    method: add
"#,
        header = header("m")
    );
    ws.write("reg/_index.yaml", yaml);
    ws.write(
        "reg/broken/_index.yaml",
        "version: \"1.0\"\nnamespace: [unclosed\n",
    );
    let run = ws.wafer(&["check", "reg"]);
    run.code(1);
    let expected = [
        "entry m:lua: field kind: unknown kind `function.lua`",
        // Without `method` a function would be a wasi:http proxy: the typo
        // is the one problem.
        "entry m:typo: field methd: unknown field for function.wat",
        "entry m:unpinned: field hash: missing required field",
        "entry m:dup: field name: duplicate id",
        "entry m:dangling: field fs: refers to m:nowhere, which is not in the registry",
        "entry m:mismatch: field hash: sha256 mismatch",
        "entry m:notwasm: field path:",
        "entry m:badwat: field source: WAT does not parse: expected a i32 (at <inline>:1:40)",
        "entry m:badhash: field hash: `md5:abc` is not of the form sha256:<hex>",
        "entry m:badwit: field wit: wit does not parse",
        "entry m:noexport: field method: the component has no export `types#missing`",
        "entry m:zerolimit: field limits.max_execution_ms: must be at least 1",
        "entry m:badpool: field pool.max_size: invalid type",
        "broken/_index.yaml: not valid YAML",
    ];
    for line in expected {
        run.stdout_has(line);
    }
    run.stdout_has(&format!("problems ({}):", expected.len()));
    let listed = |id: &str| {
        run.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(id))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        listed("m:good ").ends_with("function.wasm  wit           func(a: s32, b: s32) -> s32"),
        "{}",
        run.stdout
    );
    assert!(
        listed("m:mismatch ").ends_with("(refused: see problems)"),
        "{}",
        run.stdout
    );
    let json: serde_json::Value =
        serde_json::from_str(&ws.wafer(&["check", "reg", "--json"]).stdout).unwrap();
    assert_eq!(json["problems"].as_array().unwrap().len(), expected.len());
    let good = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "m:good")
        .unwrap();
    assert_eq!(good["signature"], "func(a: s32, b: s32) -> s32");
    assert_eq!(good["abi"], "wit");
    let kinds: Vec<String> = json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let place = |key: &str| p[key].as_str().unwrap_or("-").to_string();
            format!("{} {} {}", place("entry"), place("field"), place("kind"))
        })
        .collect();
    for expected in [
        "m:lua kind unknown_kind",
        "m:typo methd unknown_field",
        "m:unpinned hash missing_field",
        "m:dup name duplicate_id",
        "m:dangling fs reference",
        "m:mismatch hash hash_mismatch",
        "m:notwasm path invalid_module",
        "m:badwat source invalid_module",
        "m:badhash hash invalid_value",
        "m:badwit wit signature",
        "m:noexport method export",
        "m:zerolimit limits.max_execution_ms invalid_value",
        "m:badpool pool.max_size invalid_value",
        "- - syntax",
    ] {
        assert!(
            kinds.iter().any(|k| k == expected),
            "{expected}: {kinds:#?}"
        );
    }
}

#[test]
fn a_registry_using_every_field_loads_and_runs() {
    let ws = Workspace::new();
    let yaml = format!(
        r#"{header}  - name: data
    kind: fs.directory
    directory: ./data
  - name: api_key
    kind: env.variable
    variable: WAFER_TEST_API_KEY
    default: s3cr3t-value
  - name: counter
    kind: function.wat
    source: file://{counter}
    method: counter
    meta:
      owner: platform-team
    pool:
      type: static
      size: 4
      workers: 2
      buffer: 16
    transport: wasi-http
    imports: [wasi:http, wasi:sockets/tcp]
    wasi:
      args: ["--verbose"]
      cwd: /app
      env:
        - id: api_key
          name: API_KEY
          required: true
      mounts:
        - fs: data
          guest: /data
          read_only: true
    limits:
      max_execution_ms: 5000
      max_memory_bytes: 1048576
      max_output_bytes: 4096
  - name: api
    kind: http.service
    addr: ":8080"
  - name: endpoint
    kind: http.endpoint
    method: POST
    path: /count
    func: counter
  - name: flow
    kind: pipeline
    input: {{generate: {{mapping: 'root = "x"', count: 1}}}}
    output: {{drop: {{}}}}
"#,
        header = header("lf"),
        counter = wafer_guests::WAT_COUNTER,
    );
    ws.write("_index.yaml", yaml);
    ws.write("data/readme.txt", "mounted read-only");
    ws.copy_guest(wafer_guests::P1_ECHO, "upper.wasm");
    ws.write(
        "components/binding.yaml",
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: upper\nspec:\n  type: bindings.wasm\n  version: v1\n  metadata:\n  - name: url\n    value: file://upper.wasm\n  - name: direction\n    value: output\n",
    );
    ws.write(
        "components/state.yaml",
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: store\nspec:\n  type: state.redis\n  version: v1\n",
    );
    ws.write("notes.yaml", "title: not a registry\n");
    ws.write(
        "more/functions.yaml",
        "version: \"1.0\"\nnamespace: extra\nentries: []\n",
    );
    let run = ws.wafer(&["check"]);
    run.code(0)
        .stdout_has("problems (0):")
        .stdout_has("lf:counter   function.wat")
        .stdout_has("upper        bindings.wasm  wasi-command  command(args, stdin) -> stdout")
        .stdout_has("lf:flow      pipeline")
        .stdout_has("components/state.yaml: Dapr component of type state.redis")
        .stdout_has("notes.yaml: neither a registry file nor a Dapr component")
        .stdout_has("more/functions.yaml: looks like a registry file, but only files named _index.yaml are read");
    assert!(
        !run.stdout.contains("s3cr3t"),
        "an env value was printed:\n{}",
        run.stdout
    );
    assert!(
        !run.stderr.contains("s3cr3t"),
        "an env value was logged:\n{}",
        run.stderr
    );
    // The function with all those fields still runs with what is active.
    ws.wafer(&["call", "lf:counter"]).prints("1");
}

#[test]
fn an_empty_folder_is_a_problem_not_a_silent_success() {
    let ws = Workspace::new();
    ws.wafer(&["check"])
        .code(1)
        .stdout_has("no registry files here");
}

#[cfg(unix)]
#[test]
fn symlinked_registry_files_are_read_and_binary_yaml_is_skipped() {
    // Kubernetes mounts ConfigMaps as symlinks into a `..data` folder.
    let ws = Workspace::new();
    ws.write("..data/_index.yaml", format!("{}  - name: answer\n    kind: function.wat\n    source: '(module (func (export \"answer\") (result i32) i32.const 42))'\n    method: answer\n", header("k")));
    std::os::unix::fs::symlink("..data/_index.yaml", ws.path().join("_index.yaml")).unwrap();
    ws.write("latin1.yaml", b"title: caf\xe9\n");
    let run = ws.wafer(&["check"]);
    run.code(0)
        .stdout_has("k:answer")
        .stdout_has("latin1.yaml: not UTF-8 text");
}

#[test]
fn wit_errors_say_where() {
    let ws = Workspace::new();
    ws.write("_index.yaml", format!("{}  - name: f\n    kind: function.wat\n    source: '(module (func (export \"f\")))'\n    method: f\n    wit: |\n      f: func();\n      g: func(a: s32 b: s32);\n", header("w")));
    ws.wafer(&["check"]).code(1).stdout_has(
        "entry w:f: field wit: wit does not parse: expected ')', found an identifier (line 2)",
    );
}

/// Services and routes are listed; a route that answers the same requests
/// as another is refused, naming both.
#[test]
fn services_and_routes_are_listed_and_conflicts_refused() {
    let ws = Workspace::new();
    let yaml = format!(
        r#"{}  - name: f
    kind: function.wat
    source: '(module (func (export "f")))'
    method: f
  - name: api
    kind: http.service
    addr: ":8080"
  - name: greet
    kind: http.endpoint
    method: post
    path: /greet/{{name}}
    func: f
  - name: again
    kind: http.endpoint
    method: POST
    path: /greet/{{who}}
    func: f
"#,
        header("h")
    );
    ws.write("reg/_index.yaml", yaml);
    ws.wafer(&["check", "reg"])
        .code(1)
        .stdout_has("h:api    http.service   -             listens on 0.0.0.0:8080")
        .stdout_has("h:greet  http.endpoint  -             POST /greet/{name} -> h:f")
        .stdout_has("entry h:again: field path: POST /greet/{who} answers the same requests as h:greet (POST /greet/{name})");
}
