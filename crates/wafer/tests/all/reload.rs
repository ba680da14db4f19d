//! A reload's next generation ([`Runtime::successor`]): what did not change
//! carries on as it runs, what changed loads again, counters go on.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use wafer::engine::{EngineSettings, WaferEngine};
use wafer::{Registry, Runtime};

const ADD: &str = r#"(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"#;
const ADD_TEN: &str = r#"(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add i32.const 10 i32.add))"#;

/// Writes a registry into `dir`: `r:inline` answers from an inline WAT
/// whose constant is `inline`, `r:file` and `r:same` from the files
/// `file.wat` and `same.wat`, each adding its two arguments.
fn write_registry(dir: &Path, inline: i32, extra: &str) {
    let yaml = format!(
        r#"version: "1.0"
namespace: r
entries:
  - name: inline
    kind: function.wat
    source: '(module (func (export "f") (result i32) i32.const {inline}))'
    method: f
    pool: {{type: lazy, max_size: 4}}
  - name: file
    kind: function.wat
    source: file://file.wat
    method: add
    pool: {{type: lazy, max_size: 4}}
  - name: same
    kind: function.wat
    source: file://same.wat
    method: add
    pool: {{type: lazy, max_size: 4}}
{extra}"#
    );
    std::fs::write(dir.join("_index.yaml"), yaml).unwrap();
}

/// A folder holding the first registry: `r:inline` answers 1.
fn first_generation() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file.wat"), ADD).unwrap();
    std::fs::write(dir.path().join("same.wat"), ADD).unwrap();
    write_registry(dir.path(), 1, "");
    dir
}

/// A runtime on an engine with room for reloads, as `wafer run` makes it.
fn reloadable(registry: Registry) -> Runtime {
    let engine = WaferEngine::new(&EngineSettings::for_reloads(&registry)).unwrap();
    Runtime::with_engine(registry, engine, Default::default()).unwrap()
}

#[tokio::test]
async fn unchanged_functions_carry_on_and_changed_ones_load_again() {
    let dir = first_generation();
    let old = Arc::new(reloadable(Registry::load(dir.path()).unwrap()));
    for id in ["r:file", "r:same"] {
        assert_eq!(old.call(id, vec![json!(1), json!(2)]).await.unwrap(), 3);
    }
    assert_eq!(old.call("r:inline", vec![]).await.unwrap(), 1);
    let same_before = old.function("r:same").await.unwrap();

    // The inline module changes, file.wat changes on disk, same.wat and
    // its entry do not; a function is added.
    std::fs::write(dir.path().join("file.wat"), ADD_TEN).unwrap();
    let added =
        format!("  - name: added\n    kind: function.wat\n    source: '{ADD}'\n    method: add\n");
    write_registry(dir.path(), 2, &added);
    let (new, carried) = old.successor(Registry::load(dir.path()).unwrap()).unwrap();
    assert_eq!(carried.kept, ["r:same"]);
    assert_eq!(carried.reloaded, ["r:file", "r:inline"]);
    assert!(!carried.new_engine);
    assert_eq!((old.generation(), new.generation()), (1, 2));

    // The same loaded function, warm instances and all.
    assert!(Arc::ptr_eq(
        &same_before,
        &new.function("r:same").await.unwrap()
    ));
    assert_eq!(new.call("r:inline", vec![]).await.unwrap(), 2);
    assert_eq!(
        new.call("r:file", vec![json!(1), json!(2)]).await.unwrap(),
        13
    );
    assert_eq!(
        new.call("r:added", vec![json!(1), json!(2)]).await.unwrap(),
        3
    );
    // Calls on the old generation still answer as it was.
    assert_eq!(
        old.call("r:file", vec![json!(1), json!(2)]).await.unwrap(),
        3
    );

    // Counters go on across the reload.
    let text = new.metrics_text();
    for line in [
        r#"wafer_function_calls_total{function="r:file",outcome="ok"} 3"#,
        r#"wafer_function_calls_total{function="r:inline",outcome="ok"} 2"#,
        r#"wafer_function_calls_total{function="r:same",outcome="ok"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
    }
    // The engine is shared and its counts go on: three compiled before,
    // and only r:inline, r:file and r:added since (not r:same).
    assert_eq!(new.compile_stats().compiled, 3 + 3);
}

#[tokio::test]
async fn a_registry_that_needs_more_instances_gets_an_engine_of_its_own() {
    let dir = first_generation();
    let old = reloadable(Registry::load(dir.path()).unwrap());
    assert_eq!(
        old.call("r:same", vec![json!(1), json!(1)]).await.unwrap(),
        2
    );
    let big = "  - name: big\n    kind: function.wat\n    source: '(module)'\n    pool: {type: lazy, max_size: 4000}\n";
    write_registry(dir.path(), 1, big);
    let (new, carried) = old.successor(Registry::load(dir.path()).unwrap()).unwrap();
    assert!(carried.new_engine);
    // Unchanged, but on the new engine: not listed as changed.
    assert_eq!(carried.moved, ["r:same"]);
    assert!(carried.reloaded.is_empty(), "{carried:?}");
    assert_eq!(
        new.call("r:same", vec![json!(2), json!(2)]).await.unwrap(),
        4
    );
}

#[tokio::test]
async fn a_removed_function_is_gone_and_a_refused_one_says_why() {
    let dir = first_generation();
    let old = Runtime::new(Registry::load(dir.path()).unwrap()).unwrap();
    assert_eq!(
        old.call("r:same", vec![json!(1), json!(1)]).await.unwrap(),
        2
    );
    assert_eq!(
        old.call("r:file", vec![json!(1), json!(1)]).await.unwrap(),
        2
    );

    std::fs::write(dir.path().join("file.wat"), "(module (func").unwrap();
    std::fs::remove_file(dir.path().join("same.wat")).unwrap();
    let yaml = std::fs::read_to_string(dir.path().join("_index.yaml")).unwrap();
    let without_same = yaml.split("  - name: same").next().unwrap().to_string();
    std::fs::write(dir.path().join("_index.yaml"), without_same).unwrap();
    let (new, carried) = old.successor(Registry::load(dir.path()).unwrap()).unwrap();
    assert!(carried.kept.is_empty(), "{carried:?}");
    assert_eq!(carried.reloaded, ["r:file"]);
    let gone = new.call("r:same", vec![]).await.unwrap_err();
    assert_eq!(gone.kind(), wafer::ErrorKind::UnknownFunction);
    let broken = new
        .call("r:file", vec![json!(1), json!(1)])
        .await
        .unwrap_err();
    assert!(
        broken.to_string().contains("WAT does not parse"),
        "{broken}"
    );
}
