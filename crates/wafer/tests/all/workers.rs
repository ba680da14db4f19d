//! Nothing holds Tokio's async workers for long: not a guest that spins on
//! the synchronous path, not a function's first load. Every wait here is
//! for a state (a counter, a connection), never for time.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use wafer::{Error, Registry, Runtime, Sha256Hash};

/// How long a test waits for a state before it fails instead of hanging.
const GIVE_UP: Duration = Duration::from_secs(30);

/// Waits on this (non-worker) thread until `condition` holds. The test's
/// own thread polls, so the wait works even while every worker is stuck.
fn wait_blocking(what: &str, mut condition: impl FnMut() -> bool) {
    let give_up = std::time::Instant::now() + GIVE_UP;
    while !condition() {
        assert!(
            std::time::Instant::now() < give_up,
            "gave up waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Calls `id` in a task on the runtime's workers; the answer arrives on
/// the returned channel.
fn spawn_call(
    runtime: &Arc<Runtime>,
    id: &str,
    args: Vec<Value>,
) -> mpsc::Receiver<wafer::Result<Value>> {
    let (answer, answered) = mpsc::channel();
    let runtime = runtime.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        let _ = answer.send(runtime.call(&id, args).await);
    });
    answered
}

const ADD: &str = r#"(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinning_synchronous_guests_do_not_delay_a_short_call() {
    const WORKERS: usize = 2;
    const SPINNERS: usize = WORKERS + 1;
    // No time limit that could end the spinners: only the interrupt does.
    let yaml = format!(
        "version: \"1.0\"\nnamespace: w\nentries:\n  - name: spin\n    kind: function.wat\n    source: file://{}\n    method: spin\n    limits:\n      max_execution_ms: 3600000\n  - name: add\n    kind: function.wat\n    source: '{ADD}'\n    method: add\n",
        wafer_guests::WAT_SPIN
    );
    let runtime = Arc::new(Runtime::new(Registry::from_yaml("/w.yaml", &yaml)).unwrap());
    // Should an assertion fail, the spinners still stop and the test ends.
    let _stop_spinners = InterruptOnDrop(runtime.engine().clone());
    let spin = runtime.function("w:spin").await.unwrap();
    runtime.function("w:add").await.unwrap();
    let spinners: Vec<_> = (0..SPINNERS)
        .map(|_| spawn_call(&runtime, "w:spin", vec![]))
        .collect();
    // More spinners than workers: all of them run only if each one that
    // outlived an epoch tick gave its worker's other tasks away.
    wait_blocking("every spinner runs", || {
        spin.pool_stats().running == SPINNERS
    });
    let short = spawn_call(&runtime, "w:add", vec![json!(2), json!(40)]);
    let answer = short
        .recv_timeout(GIVE_UP)
        .expect("the short call never ran");
    assert_eq!(answer.unwrap(), json!(42));
    runtime.engine().interrupt_all();
    for spinner in spinners {
        let err = spinner.recv_timeout(GIVE_UP).unwrap().unwrap_err();
        assert!(matches!(err, Error::Interrupted { .. }), "{err}");
    }
}

/// Interrupts every guest of an engine when dropped.
struct InterruptOnDrop(wafer::engine::WaferEngine);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        self.0.interrupt_all();
    }
}

/// An HTTP server for one module that answers only when told to.
struct HeldServer {
    url: String,
    release: mpsc::Sender<()>,
    requests: mpsc::Receiver<()>,
}

impl HeldServer {
    fn start(module: Vec<u8>) -> HeldServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/add.wasm", listener.local_addr().unwrap());
        let (release, released) = mpsc::channel::<()>();
        let (requested, requests) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut request = [0; 4096];
                let _ = stream.read(&mut request);
                let _ = requested.send(());
                if released.recv().is_err() {
                    return;
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/wasm\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    module.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&module);
            }
        });
        HeldServer {
            url,
            release,
            requests,
        }
    }
}

// One worker: should the download hold it, no other call could run.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_first_load_is_shared_and_holds_no_worker() {
    let module = wat::parse_str(ADD).unwrap();
    let server = HeldServer::start(module.clone());
    let yaml = format!(
        "version: \"1.0\"\nnamespace: w\nentries:\n  - name: fetched\n    kind: function.wasm\n    url: {}\n    hash: {}\n    method: add\n  - name: add\n    kind: function.wat\n    source: '{ADD}'\n    method: add\n",
        server.url,
        Sha256Hash::of(&module)
    );
    let runtime = Arc::new(Runtime::new(Registry::from_yaml("/w.yaml", &yaml)).unwrap());
    let first = spawn_call(&runtime, "w:fetched", vec![json!(1), json!(2)]);
    server
        .requests
        .recv_timeout(GIVE_UP)
        .expect("no download started");
    let second = spawn_call(&runtime, "w:fetched", vec![json!(3), json!(4)]);
    // While the download hangs, other calls go on.
    for i in 0..4 {
        let other = spawn_call(&runtime, "w:add", vec![json!(i), json!(40)]);
        assert_eq!(other.recv_timeout(GIVE_UP).unwrap().unwrap(), json!(i + 40));
    }
    server.release.send(()).unwrap();
    assert_eq!(first.recv_timeout(GIVE_UP).unwrap().unwrap(), json!(3));
    assert_eq!(second.recv_timeout(GIVE_UP).unwrap().unwrap(), json!(7));
    assert!(
        server.requests.try_recv().is_err(),
        "the second caller waited for the first load instead of downloading again"
    );
}
