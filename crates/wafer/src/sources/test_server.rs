//! Real HTTP servers on 127.0.0.1 for the download and cache tests, so that
//! requests go through the same client code as in production.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;

/// A minimal valid-looking core module: the Wasm magic and version 1.
pub(super) const MODULE: &[u8] = b"\0asm\x01\0\0\0";

/// An axum server on its own runtime, serving fixed routes:
/// `/module.wasm` ([`MODULE`], counted), `/page.html` (HTML by Content-Type),
/// `/octet-html` (HTML as application/octet-stream), `/zip` (not Wasm),
/// `/big.wasm` (4 KiB of Wasm-looking bytes), `/missing` (404) and
/// `/slow.wasm` (answers after 10 s).
pub(super) struct TestServer {
    addr: SocketAddr,
    module_hits: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestServer {
    pub(super) fn start() -> TestServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let module_hits = Arc::new(AtomicUsize::new(0));
        let hits = module_hits.clone();
        let app = Router::new()
            .route(
                "/module.wasm",
                get(move || {
                    hits.fetch_add(1, Ordering::SeqCst);
                    async { ([(header::CONTENT_TYPE, "application/wasm")], MODULE) }
                }),
            )
            .route(
                "/page.html",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                        "<!doctype html><html><body>Sign in</body></html>",
                    )
                }),
            )
            .route(
                "/octet-html",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "application/octet-stream")],
                        "\n<html><body>Not found</body></html>",
                    )
                }),
            )
            .route(
                "/zip",
                get(|| async { b"PK\x03\x04 not a module".as_slice() }),
            )
            .route("/big.wasm", get(|| async { [MODULE, &[0; 4096]].concat() }))
            .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
            .route(
                "/slow.wasm",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    MODULE
                }),
            );
        runtime.spawn(async move { axum::serve(listener, app).await });
        TestServer {
            addr,
            module_hits,
            runtime: Some(runtime),
        }
    }

    /// The absolute URL of `path` on this server.
    pub(super) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many requests `/module.wasm` has had.
    pub(super) fn module_hits(&self) -> usize {
        self.module_hits.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Not waiting for `/slow.wasm`'s sleep keeps the tests quick.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Serves `body` once, with no Content-Length (the end is the connection's
/// close), from a plain thread: axum always sends a length for a fixed body.
/// Returns the URL to request.
pub(super) fn serve_once_without_length(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/stream.wasm", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let mut request = Vec::new();
        let mut buffer = [0; 1024];
        while !request.windows(4).any(|window| window == b"\r\n\r\n") {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buffer[..n]),
            }
        }
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/wasm\r\nConnection: close\r\n\r\n";
        // The client hangs up once it has seen enough: write errors are expected.
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(&body);
    });
    url
}

/// A port on 127.0.0.1 that nothing listens on (it was free a moment ago).
pub(super) fn unused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
