//! Shared set-up: registries over the built guests, one runtime per guest.

use std::sync::{Arc, LazyLock};

use wafer::{Registry, Runtime, Sha256Hash};

/// A registry entry for `method` of the guest at `path`, under `name`.
pub fn wasm_entry(name: &str, path: &str, method: &str, extra: &str) -> String {
    format!(
        "{}    method: {method:?}\n{extra}",
        module_entry(name, "guests", path)
    )
}

/// A registry entry running the WASI program at `path` (in the
/// `fs.directory` entry `fs`) as `name`.
pub fn command_entry(name: &str, fs: &str, path: &str, extra: &str) -> String {
    format!(
        "{}    abi: wasi-command\n{extra}",
        module_entry(name, fs, path)
    )
}

/// The `function.wasm` fields locating the guest at `path` in `fs`.
fn module_entry(name: &str, fs: &str, path: &str) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("guest {path} was not built: {e}"));
    let file = std::path::Path::new(path);
    format!(
        "  - name: {name}\n    kind: function.wasm\n    fs: {fs}\n    path: {}\n    hash: {}\n",
        file.file_name().unwrap().to_string_lossy(),
        Sha256Hash::of(&bytes),
    )
}

/// A registry (namespace `t`) whose `guests` directory holds `dir`.
pub fn registry(dir: &str, entries: &[String]) -> Registry {
    let yaml = format!(
        "version: \"1.0\"\nnamespace: t\nentries:\n  - name: guests\n    kind: fs.directory\n    directory: {dir:?}\n{}",
        entries.concat()
    );
    let registry = Registry::from_yaml("test.yaml", &yaml);
    assert!(registry.problems().is_empty(), "{:#?}", registry.problems());
    registry
}

pub fn dir_of(path: &str) -> String {
    std::path::Path::new(path)
        .parent()
        .unwrap()
        .display()
        .to_string()
}

/// Every `types` function of the P2_TYPES component as `t:<name>`, plus
/// `t:add`, compiled once for all tests. `t:misbehave` stops after 1 s,
/// its spinning calls for the limit, its counting ones with time to spare.
pub static TYPES: LazyLock<Arc<Runtime>> = LazyLock::new(|| {
    const FUNCTIONS: &[&str] = &[
        "echo-user",
        "add-points",
        "echo-kebab",
        "nested-option",
        "divide",
        "check",
        "echo-shape",
        "next-color",
        "invert",
        "swap",
        "echo-char",
        "echo-ints",
        "echo-floats",
        "reverse-bytes",
        "deep",
        "greet",
        "nothing",
        "counter",
        "boom",
        "env-var",
        "read-file",
        "flood",
        "sleep-ms",
    ];
    let path = wafer_guests::P2_TYPES;
    let mut entries: Vec<String> = FUNCTIONS
        .iter()
        .map(|f| wasm_entry(f, path, &format!("types#{f}"), ""))
        .collect();
    entries.push(wasm_entry("add", path, "add", ""));
    entries.push(wasm_entry(
        "misbehave",
        path,
        "types#misbehave",
        "    limits:\n      max_execution_ms: 1000\n",
    ));
    Arc::new(Runtime::new(registry(&dir_of(path), &entries)).unwrap())
});

/// A runtime over P2_TYPES functions: (name, method, extra YAML) each.
pub fn types_runtime(functions: &[(&str, &str, &str)]) -> Runtime {
    let path = wafer_guests::P2_TYPES;
    let entries: Vec<String> = functions
        .iter()
        .map(|(name, method, extra)| wasm_entry(name, path, method, extra))
        .collect();
    Runtime::new(registry(&dir_of(path), &entries)).unwrap()
}

/// Waits until `condition` holds, checking every millisecond; panics with
/// `what` after 10 seconds. For states that background work reaches.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !condition() {
        assert!(
            std::time::Instant::now() < give_up,
            "gave up waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// The `imports` of an entry whose guest may connect to loopback (the
/// `hold` function).
pub const LOOPBACK_GRANT: &str =
    "    imports:\n      - name: wasi:sockets\n        allow: [\"127.0.0.1:*\"]\n";

/// Where `types#hold` calls connect: each call stays inside the guest until
/// [`Holder::release`], so a test knows how many calls run at once without
/// counting on timing.
pub struct Holder {
    listener: tokio::net::TcpListener,
    held: Vec<tokio::net::TcpStream>,
}

impl Holder {
    pub async fn new() -> Holder {
        Holder {
            listener: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            held: Vec::new(),
        }
    }

    /// The address to pass to `hold`.
    pub fn addr(&self) -> serde_json::Value {
        serde_json::Value::String(self.listener.local_addr().unwrap().to_string())
    }

    /// Waits until `calls` more calls are inside the guest (connected);
    /// panics after 10 seconds.
    pub async fn wait_for(&mut self, calls: usize) {
        for _ in 0..calls {
            let accepted =
                tokio::time::timeout(std::time::Duration::from_secs(10), self.listener.accept())
                    .await
                    .expect("gave up waiting for a hold call to connect");
            self.held.push(accepted.unwrap().0);
        }
    }

    /// Lets every held call return.
    pub fn release(&mut self) {
        self.held.clear();
    }
}
