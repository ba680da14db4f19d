//! The baseline of the outbound-call benchmark: the GET a wasi:http guest
//! makes, made by plain Rust (HTTP/1.1), N times in a row on one kept
//! connection, as wafer's outbound client sends them, then N times each on
//! a new connection (`Connection: close`). Prints the median and 99th
//! percentile of one request in microseconds, for each.
//!
//! ```text
//! cargo run --release -p wafer-http --example plain_get -- http://127.0.0.1:9000/hello 20000
//! ```

use std::io::{BufRead, BufReader, Read, Write};
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

    let kept = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    let stream = TcpStream::connect(authority)?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(&stream);
    let micros = timed(count, || {
        (&stream).write_all(kept.as_bytes())?;
        read_response(&mut reader)
    })?;
    report("on one kept connection", count, micros);

    let closed = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    let mut response = Vec::new();
    let micros = timed(count, || {
        let mut stream = TcpStream::connect(authority)?;
        stream.write_all(closed.as_bytes())?;
        response.clear();
        stream.read_to_end(&mut response)?;
        assert!(response.starts_with(b"HTTP/1.1 200"), "a 200 answer");
        Ok(())
    })?;
    report("each a new connection", count, micros);
    Ok(())
}

/// How long each of `count` runs of `request` took, in microseconds,
/// sorted.
fn timed(
    count: usize,
    mut request: impl FnMut() -> std::io::Result<()>,
) -> std::io::Result<Vec<u64>> {
    let mut micros = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        request()?;
        micros.push(started.elapsed().as_micros() as u64);
    }
    micros.sort_unstable();
    Ok(micros)
}

/// Reads one response with a `Content-Length`, and checks it is a 200.
fn read_response(reader: &mut impl BufRead) -> std::io::Result<()> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    assert!(line.starts_with("HTTP/1.1 200"), "a 200 answer: {line}");
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        if line.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().expect("a length");
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)
}

fn report(how: &str, count: usize, micros: Vec<u64>) {
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q) as usize];
    println!(
        "plain Rust client, {count} GETs {how}: p50 {} µs, p99 {} µs",
        at(0.5),
        at(0.99)
    );
}
