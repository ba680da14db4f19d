//! Modules from URLs and the disk cache, through a [`Runtime`]: Dapr
//! components with `file://` and `http://` URLs, `strictSandbox`, compiled
//! code reused across restarts, tampered artifacts.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use wafer::{CommandInput, Error, Input, Registry, Runtime, RuntimeOptions};

/// A Dapr `bindings.wasm` component named `name` for `url`.
fn dapr_component(name: &str, url: &str, strict: bool) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: bindings.wasm\n  version: v1\n  metadata:\n  - name: url\n    value: \"{url}\"\n  - name: direction\n    value: output\n  - name: strictSandbox\n    value: \"{strict}\"\n"
    )
}

/// A registry folder holding `files` (name, YAML).
fn registry_dir(files: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, yaml) in files {
        std::fs::write(dir.path().join(name), yaml).unwrap();
    }
    dir
}

fn runtime(registry: &Path, cache: Option<&Path>) -> Runtime {
    let registry = Registry::load(registry).unwrap();
    assert!(registry.problems().is_empty(), "{:#?}", registry.problems());
    let options = RuntimeOptions {
        cache_dir: cache.map(Path::to_path_buf),
        ..Default::default()
    };
    Runtime::with_options(registry, options).unwrap()
}

async fn stdout(runtime: &Runtime, id: &str, args: &[&str]) -> String {
    let output = runtime
        .invoke(
            id,
            Input::Program(CommandInput::new().args(args.iter().copied())),
        )
        .await
        .unwrap()
        .into_program()
        .unwrap();
    String::from_utf8(output.stdout).unwrap()
}

/// Dapr's `args` test: its module is `main.wasm`, so argv[0] is `main`.
#[tokio::test]
async fn a_dapr_component_runs_its_file_url_with_daprs_argv() {
    let modules = tempfile::tempdir().unwrap();
    let main = modules.path().join("main.wasm");
    std::fs::copy(wafer_guests::P1_ARGS, &main).unwrap();
    let url = format!("file://{}", main.display());
    let dir = registry_dir(&[("wasm.yaml", dapr_component("wasm", &url, false))]);
    let runtime = runtime(dir.path(), None);
    assert_eq!(stdout(&runtime, "wasm", &[]).await, "main");
    assert_eq!(stdout(&runtime, "wasm", &["1", "2"]).await, "main\n1\n2");
}

#[tokio::test]
async fn strict_sandbox_makes_clocks_and_randomness_repeat() {
    for (target, program) in [
        ("p1", wafer_guests::P1_CLOCK_RANDOM),
        ("p2", wafer_guests::P2_CLOCK_RANDOM),
    ] {
        let url = format!("file://{program}");
        let dir = registry_dir(&[
            ("strict.yaml", dapr_component("strict", &url, true)),
            ("loose.yaml", dapr_component("loose", &url, false)),
        ]);
        let runtime = runtime(dir.path(), None);
        let first = stdout(&runtime, "strict", &[]).await;
        assert_eq!(first, stdout(&runtime, "strict", &[]).await, "{target}");
        let lines: Vec<&str> = first.lines().collect();
        // 2022-01-01T00:00:00Z, and 1 ms per clock read.
        assert!(lines[0].starts_with("1640995200"), "{target}: {first}");
        assert_eq!(lines[1], "1000000", "{target}: {first}");
        let loose = stdout(&runtime, "loose", &[]).await;
        assert_ne!(loose, stdout(&runtime, "loose", &[]).await, "{target}");
        // Sleeps return at once: an hour's sleep ends within the default
        // 10 s limit.
        let slept = stdout(&runtime, "strict", &["3600000"]).await;
        assert_eq!(slept.lines().nth(1), Some("1000000"), "{target}");
    }
}

#[tokio::test]
async fn a_warm_cache_compiles_nothing_and_a_tampered_artifact_is_recompiled() {
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", wafer_guests::P2_HELLO);
    let dir = registry_dir(&[("hello.yaml", dapr_component("hello", &url, false))]);
    let cold = runtime(dir.path(), Some(cache.path()));
    assert_eq!(stdout(&cold, "hello", &["a"]).await, "hello a");
    assert_eq!(cold.compile_stats().compiled, 1);

    let warm = runtime(dir.path(), Some(cache.path()));
    assert_eq!(stdout(&warm, "hello", &["b"]).await, "hello b");
    let stats = warm.compile_stats();
    assert_eq!((stats.compiled, stats.from_cache), (0, 1));

    let compiled = cache.path().join("compiled");
    for artifact in std::fs::read_dir(&compiled).unwrap() {
        let path = artifact.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    let tampered = runtime(dir.path(), Some(cache.path()));
    assert_eq!(stdout(&tampered, "hello", &["c"]).await, "hello c");
    let stats = tampered.compile_stats();
    assert_eq!((stats.compiled, stats.from_cache), (1, 0));
}

// The library's own test server, for `serve` (the rest is for its unit tests).
#[allow(dead_code)]
#[path = "../../src/sources/test_server.rs"]
mod test_server;

/// Serves `module` at `/hello.wasm` (counting requests) and at
/// `/flaky.wasm` (404 the first time), and HTML at `/page.wasm`.
fn serve(module: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    use test_server::Response;
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let flaky = AtomicUsize::new(0);
    let addr = test_server::serve(move |request| match request.path() {
        "/hello.wasm" => {
            counted.fetch_add(1, Ordering::SeqCst);
            Response::ok("application/octet-stream", module.clone())
        }
        "/flaky.wasm" if flaky.fetch_add(1, Ordering::SeqCst) > 0 => {
            Response::ok("application/octet-stream", module.clone())
        }
        "/page.wasm" => Response::ok("text/html; charset=utf-8", "<html>login</html>"),
        _ => Response::not_found(),
    });
    (format!("http://{addr}"), hits)
}

#[test]
fn http_modules_are_fetched_once_per_cache_and_html_is_refused() {
    let calls = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (base, hits) = serve(std::fs::read(wafer_guests::P1_HELLO).unwrap());
    let cache = tempfile::tempdir().unwrap();
    let dir = registry_dir(&[
        (
            "hello.yaml",
            dapr_component("hello", &format!("{base}/hello.wasm"), false),
        ),
        (
            "page.yaml",
            dapr_component("page", &format!("{base}/page.wasm"), false),
        ),
    ]);
    let first = runtime(dir.path(), Some(cache.path()));
    assert_eq!(
        calls.block_on(stdout(&first, "hello", &["web"])),
        "hello web"
    );
    let second = runtime(dir.path(), Some(cache.path()));
    assert_eq!(
        calls.block_on(stdout(&second, "hello", &["again"])),
        "hello again"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(second.compile_stats().compiled, 0);

    let err = first.function_blocking("page").err().unwrap();
    assert!(matches!(err, Error::Refused { .. }), "{err}");
    assert!(err.to_string().contains("HTML"), "{err}");
}

#[tokio::test]
async fn an_unreachable_url_is_refused_naming_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/gone.wasm");
    let dir = registry_dir(&[("gone.yaml", dapr_component("gone", &url, false))]);
    let runtime = runtime(dir.path(), None);
    let err = runtime.function("gone").await.err().unwrap();
    assert!(err.to_string().contains(&url), "{err}");
}

#[tokio::test]
async fn a_download_that_failed_is_tried_again_by_a_later_call() {
    let (base, _) = serve(std::fs::read(wafer_guests::P1_HELLO).unwrap());
    let url = format!("{base}/flaky.wasm");
    let dir = registry_dir(&[("flaky.yaml", dapr_component("flaky", &url, false))]);
    let runtime = runtime(dir.path(), None);
    let err = runtime.function("flaky").await.err().unwrap();
    assert!(err.to_string().contains("HTTP 404"), "{err}");
    assert_eq!(stdout(&runtime, "flaky", &["again"]).await, "hello again");
}
