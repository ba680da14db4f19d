//! Real HTTP servers on 127.0.0.1 for the download and cache tests, so that
//! requests go through the same client code as in production. Plain
//! `std::net` on a detached thread: nothing to shut down, and no HTTP server
//! crate whose features would change how the library's dependencies build.
//! `tests/all/sources.rs` includes this file too, for [`serve`].

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A minimal valid-looking core module: the Wasm magic and version 1.
pub(super) const MODULE: &[u8] = b"\0asm\x01\0\0\0";

/// What a [`serve`] handler is asked: a request's path and headers.
pub(super) struct Request {
    head: String,
}

impl Request {
    /// The path, without the query.
    pub(super) fn path(&self) -> &str {
        // "GET /path?query HTTP/1.1"
        let target = self.head.split_whitespace().nth(1).unwrap_or("/");
        target.split('?').next().unwrap_or(target)
    }

    /// The value of header `name` (case-insensitive), if sent.
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// What a [`serve`] handler answers.
pub(super) struct Response {
    /// The status line's code and reason, such as `200 OK`.
    pub(super) status: &'static str,
    pub(super) content_type: Option<&'static str>,
    /// More headers, such as `ETag`.
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: Vec<u8>,
}

impl Response {
    pub(super) fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status: "200 OK",
            content_type: Some(content_type),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub(super) fn not_found() -> Response {
        Response {
            status: "404 Not Found",
            content_type: None,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub(super) fn not_modified() -> Response {
        Response {
            status: "304 Not Modified",
            content_type: None,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// This response with header `name: value` too.
    pub(super) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// Serves HTTP/1.1 on 127.0.0.1 from one detached thread, one connection at
/// a time: `handler` gets each request and its answer goes out with
/// Content-Length and `Connection: close`. The listener is bound on return.
pub(super) fn serve(handler: impl Fn(&Request) -> Response + Send + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Some(head) = read_head(&mut stream) else {
                continue;
            };
            let response = handler(&Request { head });
            let mut headers: String = response
                .headers
                .iter()
                .map(|(name, value)| format!("{name}: {value}\r\n"))
                .collect();
            if let Some(value) = response.content_type {
                headers.push_str(&format!("Content-Type: {value}\r\n"));
            }
            let head = format!(
                "HTTP/1.1 {}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
                response.status,
                response.body.len()
            );
            // A client that gave up (a timeout) makes these fail: fine.
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&response.body);
        }
    });
    addr
}

/// Reads a request up to the blank line after its headers; `None` if the
/// client hangs up first.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut request = Vec::new();
    let mut buffer = [0; 1024];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return None,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    Some(String::from_utf8_lossy(&request).into_owned())
}

/// A server with fixed routes: `/module.wasm` ([`MODULE`], counted),
/// `/page.html` (HTML by Content-Type), `/octet-html` (HTML as
/// application/octet-stream), `/zip` (not Wasm), `/big.wasm` (4 KiB of
/// Wasm-looking bytes), `/missing` (404) and `/slow.wasm` (answers after
/// 10 s, holding up later requests, so tests ask for it last).
pub(super) struct TestServer {
    addr: SocketAddr,
    module_hits: Arc<AtomicUsize>,
}

impl TestServer {
    pub(super) fn start() -> TestServer {
        let module_hits = Arc::new(AtomicUsize::new(0));
        let hits = module_hits.clone();
        let octets = "application/octet-stream";
        let addr = serve(move |request| match request.path() {
            "/module.wasm" => {
                hits.fetch_add(1, Ordering::SeqCst);
                Response::ok("application/wasm", MODULE)
            }
            "/page.html" => Response::ok(
                "text/html; charset=utf-8",
                "<!doctype html><html><body>Sign in</body></html>",
            ),
            "/octet-html" => Response::ok(octets, "\n<html><body>Not found</body></html>"),
            "/zip" => Response::ok(octets, b"PK\x03\x04 not a module"),
            "/big.wasm" => Response::ok(octets, [MODULE, &[0; 4096]].concat()),
            "/slow.wasm" => {
                std::thread::sleep(Duration::from_secs(10));
                Response::ok(octets, MODULE)
            }
            _ => Response::not_found(),
        });
        TestServer { addr, module_hits }
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

/// Serves `body` once, with no Content-Length (the end is the connection's
/// close), unlike [`serve`]. Returns the URL to request.
pub(super) fn serve_once_without_length(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/stream.wasm", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        if read_head(&mut stream).is_none() {
            return;
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
