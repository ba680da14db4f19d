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
