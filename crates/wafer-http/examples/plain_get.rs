//! The baseline of the outbound-call benchmark: the GET a wasi:http guest
//! makes, made by plain Rust, N times in a row, each on a new connection
//! as wasmtime-wasi-http makes them (HTTP/1.1, `Connection: close`).
//! Prints the median and 99th percentile of one request in microseconds.
//!
//! ```text
//! cargo run --release -p wafer-http --example plain_get -- http://127.0.0.1:9000/hello 20000
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:9000/hello".into());
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    let mut micros = Vec::with_capacity(count);
    let mut response = Vec::new();
    for _ in 0..count {
        let started = Instant::now();
        let mut stream = TcpStream::connect(authority)?;
        stream.write_all(request.as_bytes())?;
        response.clear();
        stream.read_to_end(&mut response)?;
        micros.push(started.elapsed().as_micros() as u64);
        assert!(response.starts_with(b"HTTP/1.1 200"), "a 200 answer");
    }
    micros.sort_unstable();
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q) as usize];
    println!(
        "plain Rust client, {count} GETs, each a new connection: p50 {} µs, p99 {} µs",
        at(0.5),
        at(0.99)
    );
    Ok(())
}
