//! A local HTTP server the outputs under test send to: it records each
//! request, then answers it with the status it was told.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc::Receiver;

/// One request the receiver answered.
#[derive(Debug)]
pub struct Request {
    /// The request line: `POST /logs HTTP/1.1`.
    pub line: String,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// What it was answered.
    pub status: u16,
}

impl Request {
    pub fn method(&self) -> &str {
        self.line.split_whitespace().next().unwrap_or("")
    }

    /// The body as text (it must be UTF-8).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a UTF-8 body")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// An HTTP server on a free loopback port, in a thread of its own: it
/// answers its requests with `statuses` in turn (the last one over and
/// over), one request per connection, and records each request before it
/// answers (so a request the client saw answered is in the receiver). With
/// a `gate`, it answers nothing until the gate opens (a message or a
/// hang-up on it). Returns its address, `127.0.0.1:PORT`.
pub fn http_receiver(
    statuses: Vec<u16>,
    gate: Option<Receiver<()>>,
) -> (String, Receiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (record, recorded) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let Some(mut request) = read_request(&mut stream) else {
                continue;
            };
            let status = statuses[n.min(statuses.len() - 1)];
            request.status = status;
            let reason = match status {
                200 => "OK",
                429 => "Too Many Requests",
                500 => "Internal Server Error",
                _ => "Whatever",
            };
            let body = if status == 200 { "" } else { "refused\n" };
            if record.send(request).is_err() {
                return;
            }
            if n == 0
                && let Some(gate) = &gate
            {
                let _ = gate.recv();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (address, recorded)
}

/// A request read from `stream`: its line, headers and `Content-Length`
/// body; `None` when the client went away first.
fn read_request(stream: &mut std::net::TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .map_or(Some(0), |(_, value)| value.parse().ok())?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        line: line.trim_end().to_string(),
        headers,
        body,
        status: 0,
    })
}
