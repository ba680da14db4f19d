//! wasi:http end to end: proxy components served by `wafer run`, outbound
//! HTTP from preview 2 components and from Dapr-shaped preview 1 programs
//! (the 2023 wasi-http imports), each request checked against the hosts its
//! entry allows, and the registry's problems. The world outside is a local
//! [`Upstream`]; every wait is for a state, never for a time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{Receiver, Sender};

use serde_json::json;

use super::server::{PATIENCE, Response, Server, wait_until};
use super::util::{Workspace, header};

type Fields = Vec<(String, String)>;

fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// A start line and its fields (names lowercased); `None` at the end of
/// the stream.
fn read_head(reader: &mut impl BufRead) -> Option<(String, Fields)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    Some((line.trim_end().to_string(), read_fields(reader)?))
}

/// Header (or trailer) lines up to the empty one.
fn read_fields(reader: &mut impl BufRead) -> Option<Fields> {
    let mut fields = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Some(fields);
        }
        let (name, value) = line.split_once(':')?;
        fields.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
}

/// A message's body (`content-length` or chunked) and a chunked one's
/// trailers.
fn read_body(reader: &mut impl BufRead, head: &Fields) -> Option<(Vec<u8>, Fields)> {
    if field(head, "transfer-encoding") != Some("chunked") {
        let length = field(head, "content-length").map_or(Some(0), |n| n.parse().ok())?;
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
        return Some((body, Vec::new()));
    }
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let size = size.trim_end().split(';').next()?;
        let size = usize::from_str_radix(size, 16).ok()?;
        if size == 0 {
            return Some((body, read_fields(reader)?));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).ok()?;
        reader.read_line(&mut String::new()).ok()?;
    }
}

/// A request the upstream answered: `GET /hello HTTP/1.1`, its headers,
/// its body.
#[derive(Debug)]
struct Seen {
    line: String,
    headers: Fields,
    body: Vec<u8>,
    /// Which of the server's connections it came on, from 0.
    connection: usize,
}

/// The world outside: an HTTP/1.1 server on a free loopback port, a thread
/// per connection, connections kept open, each request recorded before it
/// is answered. `GET /hello` answers `hello from upstream`, `/redirect-to?url=U`
/// a 302 to U (as written), `/large?bytes=N` N bytes of [`pattern`], any
/// other `GET` its request target, any other method its body. `/early`
/// answers `early` before it reads the request's body (recorded once
/// read).
struct Upstream {
    /// `127.0.0.1:PORT`.
    addr: String,
    seen: Receiver<Seen>,
}

impl Upstream {
    fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (record, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for (connection, stream) in listener.incoming().map_while(Result::ok).enumerate() {
                let record = record.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(&stream);
                    while answer(&mut reader, connection, &record) {}
                });
            }
        });
        Upstream { addr, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next request it answered.
    fn next(&self) -> Seen {
        self.seen
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("{} saw no request", self.addr))
    }

    /// Asserts nothing reached it (a request it got was recorded before
    /// its client had an answer).
    fn saw_nothing(&self) {
        if let Ok(seen) = self.seen.try_recv() {
            panic!("{} was reached: {seen:?}", self.addr);
        }
    }
}

/// Answers the next request on `reader`'s connection; false once there
/// is none.
fn answer(reader: &mut BufReader<&TcpStream>, connection: usize, record: &Sender<Seen>) -> bool {
    let Some((line, headers)) = read_head(reader) else {
        return false;
    };
    let mut stream = *reader.get_ref();
    if line.split_whitespace().nth(1) == Some("/early") {
        let answered = stream.write_all(b"HTTP/1.1 200 Upstream\r\nContent-Length: 5\r\n\r\nearly");
        let Some((body, _)) = read_body(reader, &headers) else {
            return false;
        };
        let seen = Seen {
            line,
            headers,
            body,
            connection,
        };
        return answered.is_ok() && record.send(seen).is_ok();
    }
    let Some((body, _)) = read_body(reader, &headers) else {
        return false;
    };
    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let get = line.starts_with("GET ");
    let (status, extra, reply) = if let Some(url) = target.strip_prefix("/redirect-to?url=") {
        (302, format!("Location: {url}\r\n"), Vec::new())
    } else if let Some(n) = target.strip_prefix("/large?bytes=") {
        (200, String::new(), pattern(n.parse().unwrap()))
    } else if get && target == "/hello" {
        (200, String::new(), b"hello from upstream".to_vec())
    } else if get {
        (200, String::new(), format!("GET {target}").into_bytes())
    } else {
        (200, String::new(), body.clone())
    };
    let _ = record.send(Seen {
        line,
        headers,
        body,
        connection,
    });
    let head = format!(
        "HTTP/1.1 {status} Upstream\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{extra}\r\n",
        reply.len()
    );
    stream.write_all(head.as_bytes()).is_ok() && stream.write_all(&reply).is_ok()
}

/// `len` bytes that are not all alike.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// `METHOD url` with `headers`, read whole (redirects not followed).
fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Response {
    let client = reqwest::blocking::Client::builder()
        .timeout(None)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut builder = client.request(method.parse().unwrap(), url).body(body);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = builder
        .send()
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    Response {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().unwrap().to_vec(),
    }
}

/// A function entry for `guest`, copied to `reg/<name>.wasm`, with `extra`
/// lines (`method`, `pool`, `imports`, ...; none: a wasi:http proxy).
fn function(ws: &Workspace, name: &str, guest: &str, extra: &str) -> String {
    let hash = ws.copy_guest(guest, &format!("reg/{name}.wasm"));
    format!(
        "  - name: {name}\n    kind: function.wasm\n    fs: wasm\n    path: {name}.wasm\n    hash: {hash}\n{extra}"
    )
}

/// An `http.endpoint`; `method: None` answers every method.
fn endpoint(name: &str, path: &str, method: Option<&str>, func: &str) -> String {
    let method = method.map_or(String::new(), |m| format!("    method: {m}\n"));
    format!(
        "  - name: {name}\n    kind: http.endpoint\n{method}    path: {path}\n    func: {func}\n"
    )
}

/// Outbound HTTP to `hosts`.
fn outbound(hosts: &[&str]) -> String {
    format!("    imports: [wasi:http]\n    allowed_outbound_hosts: {hosts:?}\n")
}

/// A response's status and body.
fn said(response: &Response) -> (u16, String) {
    (response.status, response.text())
}

/// `reg/_index.yaml` in namespace `w`: the guests' folder, `entries` and
/// an `http.service` on a free port.
fn write_registry(ws: &Workspace, entries: &[String]) {
    write_registry_with_service(ws, entries, "");
}

/// [`write_registry`], the service given `service_fields` too.
fn write_registry_with_service(ws: &Workspace, entries: &[String], service_fields: &str) {
    let (folder, service) = (
        "  - name: wasm\n    kind: fs.directory\n    directory: .\n",
        "  - name: api\n    kind: http.service\n    addr: 127.0.0.1:0\n",
    );
    let yaml = format!(
        "{}{folder}{}{service}{service_fields}",
        header("w"),
        entries.concat()
    );
    ws.write("reg/_index.yaml", yaml);
}

/// `wafer run` on a registry written by `entries` (given the workspace the
/// guests go into).
fn serve(entries: impl FnOnce(&Workspace) -> Vec<String>) -> (Workspace, Server) {
    let ws = Workspace::new();
    let entries = entries(&ws);
    write_registry(&ws, &entries);
    let server = Server::start(&ws);
    (ws, server)
}

/// `POST path` over a raw connection that asks for trailers (`TE:
/// trailers`), which reqwest cannot read: the status line, headers, body
/// and trailers of the chunked answer.
fn post_for_trailers(server: &Server, path: &str, body: &str) -> (String, Fields, Vec<u8>, Fields) {
    let rest = format!(
        "TE: trailers\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (_, mut reader, status, headers) = exchange(server, &format!("POST {path}"), &rest);
    let (body, trailers) = read_body(&mut reader, &headers).expect("a body");
    (status, headers, body, trailers)
}

/// Sends `request` (`METHOD /path`) over a raw HTTP/1.1 connection, its
/// `Host` header, then `rest` (more headers, the blank line, a body or
/// its start); reads the response's head. Answers the connection (to
/// write more), its reader, the status line and the headers.
fn exchange(
    server: &Server,
    request: &str,
    rest: &str,
) -> (TcpStream, BufReader<TcpStream>, String, Fields) {
    let addr = server.addr();
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "{request} HTTP/1.1\r\nHost: {addr}\r\n{rest}").unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let (status, headers) = read_head(&mut reader).expect("a response");
    (stream, reader, status, headers)
}

/// `hello` on `GET /hello`; `echo` on every method of `/echo/...` and on
/// `GET /only-get`.
fn echo_server() -> (Workspace, Server) {
    serve(|ws| {
        vec![
            function(ws, "hello", wafer_guests::HTTP_HELLO, ""),
            function(ws, "echo", wafer_guests::HTTP_ECHO, ""),
            endpoint("hello-route", "/hello", Some("GET"), "hello"),
            endpoint("echo-route", "/echo/...", None, "echo"),
            endpoint("only-get", "/only-get", Some("GET"), "echo"),
        ]
    })
}

#[cfg(unix)]
#[test]
fn a_proxy_answers_with_its_own_status_headers_streamed_body_and_trailers() {
    let (_ws, server) = echo_server();
    let hello = server.request("GET", "/hello", "");
    assert_eq!(said(&hello), (200, "Hello, world!\n".into()));
    assert_eq!(hello.header("content-type"), Some("text/plain"));
    // A body the guest finished before its call returned goes out whole.
    assert_eq!(hello.header("content-length"), Some("14"));
    // Not for HEAD, whose guest may write nothing: no length is claimed.
    let head = server.request("HEAD", "/hello", "");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), None);

    // ~8 MB, under the service's 16 MiB: streamed back byte for byte.
    let body = pattern(8_000_003);
    let url = format!("{}/echo/a/b?status=201&x=1", server.base);
    let headers = [("x-echo-a", "1"), ("X-Echo-B", "2"), ("x-c", "3")];
    let echoed = request("PUT", &url, &headers, body.clone());
    assert_eq!(echoed.status, 201, "{}", echoed.text());
    assert_eq!(echoed.header("x-method"), Some("PUT"));
    assert_eq!(
        echoed.header("x-path-with-query"),
        Some("/echo/a/b?status=201&x=1")
    );
    let authority = server.addr().to_string();
    assert_eq!(echoed.header("x-authority"), Some(authority.as_str()));
    assert_eq!(echoed.header("x-echo-a"), Some("1"));
    assert_eq!(echoed.header("x-echo-b"), Some("2"));
    assert_eq!(echoed.header("x-c"), None);
    assert!(echoed.body == body, "the body came back changed");
    // The prefix answers the path itself too.
    let itself = server.request("GET", "/echo", "");
    assert_eq!(itself.status, 200);
    assert_eq!(itself.header("x-path-with-query"), Some("/echo"));
    assert_eq!(
        server.get("/echo/x?status=abc"),
        (400, "error: bad status".into())
    );
    assert_eq!(server.get("/elsewhere").0, 404);
    // A 204 claims no length, though its (empty) body was finished.
    let empty = server.request("GET", "/echo/x?status=204", "");
    assert_eq!(empty.status, 204);
    assert_eq!(empty.header("content-length"), None);

    let (status, headers, body, trailers) =
        post_for_trailers(&server, "/echo/t?trailers=1", "trailing");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(field(&headers, "transfer-encoding"), Some("chunked"));
    assert_eq!(body, b"trailing");
    assert_eq!(field(&trailers, "x-trailer"), Some("done"), "{trailers:?}");
    assert_eq!(field(&trailers, "x-bytes"), Some("8"), "{trailers:?}");
}

/// What every other route answers a body over `max_body_bytes`.
#[cfg(unix)]
#[test]
fn a_proxy_refuses_a_body_over_max_body_bytes_with_413() {
    let ws = Workspace::new();
    let entries = [
        function(&ws, "echo", wafer_guests::HTTP_ECHO, ""),
        endpoint("echo-route", "/echo", None, "echo"),
    ];
    write_registry(&ws, &entries);
    let yaml = std::fs::read_to_string(ws.path().join("reg/_index.yaml")).unwrap();
    let limited = yaml.replace("127.0.0.1:0\n", "127.0.0.1:0\n    max_body_bytes: 1024\n");
    ws.write("reg/_index.yaml", limited);
    let server = Server::start(&ws);
    let refused = server.request("POST", "/echo", vec![b'a'; 2048]);
    assert_eq!(refused.status, 413, "{}", refused.text());
    assert_eq!(refused.json()["error"]["kind"], "body_too_large");
}

#[cfg(unix)]
#[test]
fn a_proxy_endpoint_answers_every_method_unless_it_names_one() {
    let (_ws, server) = echo_server();
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let answered = server.request(method, "/echo", "");
        assert_eq!(answered.status, 200, "{method}: {}", answered.text());
        assert_eq!(answered.header("x-method"), Some(method));
    }
    assert_eq!(server.request("GET", "/only-get", "").status, 200);
    let refused = server.request("POST", "/only-get", "body");
    assert_eq!(refused.status, 405, "{}", refused.text());
    assert_eq!(refused.header("x-method"), None, "the guest was not run");
    // The function API serves typed functions and programs, not proxies.
    let api = server.request("POST", "/v1/functions/w:echo", "[]");
    assert_eq!(api.status, 400, "{}", api.text());
    assert!(
        api.text().contains("is a wasi:http proxy"),
        "{}",
        api.text()
    );
}

#[cfg(unix)]
#[test]
fn a_proxy_gets_a_fresh_instance_per_request_unless_it_has_a_pool() {
    let (_ws, server) = serve(|ws| {
        let counter = |name, pool| function(ws, name, wafer_guests::HTTP_COUNTER, pool);
        vec![
            counter("fresh", ""),
            counter("kept", "    pool: {type: lazy, max_size: 1}\n"),
            counter(
                "recycled",
                "    pool: {type: lazy, max_size: 1, max_calls: 2}\n",
            ),
            endpoint("fresh-route", "/fresh", None, "fresh"),
            endpoint("kept-route", "/kept", None, "kept"),
            endpoint("recycled-route", "/recycled", None, "recycled"),
        ]
    });
    let counts =
        |path: &str, n: usize| -> Vec<String> { (0..n).map(|_| server.get(path).1).collect() };
    assert_eq!(counts("/fresh", 2), ["1", "1"]);
    assert_eq!(counts("/kept", 3), ["1", "2", "3"]);
    assert_eq!(counts("/recycled", 4), ["1", "2", "1", "2"]);
}

#[test]
fn a_proxy_streaming_its_body_holds_its_place_among_the_requests_answered_at_once() {
    let ws = Workspace::new();
    let entries = [
        function(&ws, "echo", wafer_guests::HTTP_ECHO, ""),
        endpoint("echo-route", "/echo/...", None, "echo"),
    ];
    write_registry_with_service(&ws, &entries, "    max_concurrent_requests: 1\n");
    let server = Server::start(&ws);
    // A request whose body is not over yet: echo has answered its head
    // and streams the body back as it comes.
    let (mut streaming, mut reader, status, headers) = exchange(
        &server,
        "POST /echo/a",
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n",
    );
    assert!(status.contains(" 200 "), "{status}");
    let (busy, text) = server.get("/echo/b");
    assert_eq!(busy, 503, "{text}");
    // Once its body is over, the place is free again.
    write!(streaming, "0\r\n\r\n").unwrap();
    let (body, _) = read_body(&mut reader, &headers).expect("the whole body");
    assert_eq!(body, b"hello");
    wait_until(
        "the place to be free",
        || server.get("/echo/c").0,
        |s| *s == 200,
    );
}

/// `busy` (300 ms to run) on every method of `/busy/...`.
fn busy_server() -> (Workspace, Server) {
    serve(|ws| {
        let limits = "    limits:\n      max_execution_ms: 300\n";
        vec![
            function(ws, "busy", wafer_guests::HTTP_BUSY_LOOP, limits),
            endpoint("busy-route", "/busy/...", None, "busy"),
        ]
    })
}

#[cfg(unix)]
#[test]
fn a_looping_proxy_times_out_while_the_server_answers_others() {
    let (_ws, server) = busy_server();
    let url = format!("{}/busy/loop", server.base);
    let looping = std::thread::spawn(move || request("GET", &url, &[], Vec::new()));
    server.wait_for_metric(
        "wafer_function_calls_in_flight",
        &[("function", "w:busy"), ("state", "running")],
        1.0,
    );
    assert_eq!(server.get("/busy/ok"), (200, "ok".into()));
    let timed_out = looping.join().unwrap();
    assert_eq!(timed_out.status, 504, "{}", timed_out.text());
    assert_eq!(timed_out.json()["error"]["kind"], "time_limit");
    assert_eq!(server.get("/busy/ok"), (200, "ok".into()));
}

#[cfg(unix)]
#[test]
fn a_proxy_that_fails_while_it_streams_breaks_the_response_off() {
    let (_ws, server) = busy_server();
    let (_, mut reader, status, headers) = exchange(
        &server,
        "GET /busy/stream-then-loop",
        "Connection: close\r\n\r\n",
    );
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(field(&headers, "transfer-encoding"), Some("chunked"));
    // The guest wrote `partial`, then its time limit stopped it: the
    // connection closes with no last chunk, not as if the body were whole.
    let mut rest = Vec::new();
    // A reset instead of a close is as good: what came before it is kept.
    let _ = reader.read_to_end(&mut rest);
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("partial"), "{rest:?}");
    assert!(!rest.ends_with("0\r\n\r\n"), "{rest:?}");
    // A guest that declares a length and returns with its body unfinished
    // and shorter: nothing of it has gone out, so the answer says so.
    let short = request(
        "GET",
        &format!("{}/busy/short", server.base),
        &[],
        Vec::new(),
    );
    assert_eq!(short.status, 500, "{}", short.text());
    assert_eq!(short.json()["error"]["kind"], "guest_error");
    let message = short.json()["error"]["message"].to_string();
    assert!(
        message.contains("w:busy ended its call with its response body broken"),
        "{message}"
    );
    // The server goes on.
    assert_eq!(server.get("/busy/ok"), (200, "ok".into()));
}

#[cfg(unix)]
#[test]
fn a_component_reaches_only_the_hosts_its_entry_allows() {
    let up = Upstream::start();
    let other = Upstream::start();
    let allowed = format!("http://{}", up.addr);
    // Allowed, but nothing listens there: the port of a connection's
    // client end, which stays taken while the connection lives.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client_end = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let nobody = format!("http://{}", client_end.local_addr().unwrap());
    let (_ws, mut server) = serve(|ws| {
        let fetch = |name, extra: &str| function(ws, name, wafer_guests::HTTP_FETCH, extra);
        vec![
            fetch("fetch", &outbound(&[&allowed, &nobody])),
            fetch("closed", "    imports: [wasi:http]\n"),
            fetch("ungranted", ""),
            endpoint("fetch-route", "/fetch", None, "fetch"),
            endpoint("closed-route", "/closed", None, "closed"),
            endpoint("ungranted-route", "/ungranted", None, "ungranted"),
        ]
    });
    let base = server.base.clone();
    let fetch = |path: &str, url: &str, more: &[(&str, &str)], body: &[u8]| {
        let mut headers = vec![("x-fetch-url", url)];
        headers.extend_from_slice(more);
        request("POST", &format!("{base}{path}"), &headers, body.to_vec())
    };

    let hello = fetch("/fetch", &up.url("/hello"), &[], b"");
    assert_eq!(said(&hello), (200, "hello from upstream".into()));
    assert_eq!(hello.header("content-type"), Some("text/plain"));
    assert_eq!(hello.header("x-fetch-hops"), Some("1"));
    let first = up.next();
    assert_eq!(first.line, "GET /hello HTTP/1.1");
    // A connection is kept for the next requests to the host: it goes
    // back once the response body has been read.
    for _ in 0..3 {
        let again = fetch("/fetch", &up.url("/hello"), &[], b"");
        assert_eq!(said(&again), (200, "hello from upstream".into()));
        assert_eq!(up.next().connection, first.connection);
    }
    let large = fetch("/fetch", &up.url("/large?bytes=3000001"), &[], b"");
    assert!(large.status == 200 && large.body == pattern(3_000_001));
    up.next();
    let more = [("x-fetch-method", "POST"), ("x-fetch-header-x-c", "yes")];
    let posted = fetch("/fetch", &up.url("/submit"), &more, b"sent upstream");
    assert_eq!(said(&posted), (200, "sent upstream".into()));
    let seen = up.next();
    assert_eq!(seen.line, "POST /submit HTTP/1.1");
    assert_eq!(field(&seen.headers, "x-c"), Some("yes"));
    // An answer that comes before the request body has gone out: the body
    // still goes out whole, while the guest reads the answer.
    let method = [("x-fetch-method", "POST")];
    let early = fetch("/fetch", &up.url("/early"), &method, &pattern(3_000_001));
    assert_eq!(said(&early), (200, "early".into()));
    assert!(up.next().body == pattern(3_000_001));

    // Refused in the guest, logged (naming the function, the host and
    // why) and counted; each hop of a redirect is a request of its own,
    // checked again.
    let not_listed = |to: &Upstream| format!("{} denied: not in allowed_outbound_hosts", to.addr);
    let away = format!("/redirect-to?url={}", other.url("/hello"));
    let follow = [("x-follow-redirects", "3")];
    let unimported = "denied: the entry does not import wasi:http".to_string();
    for (path, url, more, why) in [
        ("/fetch", other.url("/hello"), &[][..], not_listed(&other)),
        ("/closed", up.url("/hello"), &[], not_listed(&up)),
        ("/ungranted", up.url("/hello"), &[], unimported),
        ("/fetch", up.url(&away), &follow, not_listed(&other)),
    ] {
        let answer = said(&fetch(path, &url, more, b""));
        assert_eq!(answer, (502, "error: HttpRequestDenied".into()), "{url}");
        let line = server.wait_for_line("Outbound HTTP request to");
        let function = format!("function=w:{}", &path[1..]);
        assert!(
            line.contains(" WARN ") && line.contains(&function),
            "{line}"
        );
        assert!(line.contains(&why), "{line}");
    }
    assert_eq!(up.next().line, format!("GET {away} HTTP/1.1"));
    let home = up.url(&format!("/redirect-to?url={}", up.url("/hello")));
    let followed = fetch("/fetch", &home, &follow, b"");
    assert_eq!(said(&followed), (200, "hello from upstream".into()));
    assert_eq!(followed.header("x-fetch-hops"), Some("2"));
    up.next();
    assert_eq!(up.next().line, "GET /hello HTTP/1.1");

    let count = |function: &str, outcome: &str| {
        let labels = [("function", function), ("outcome", outcome)];
        server.metric("wafer_outbound_http_requests_total", &labels)
    };
    // An allowed host that refuses the connection: the guest is told so.
    let refused = fetch("/fetch", &format!("{nobody}/hello"), &[], b"");
    assert_eq!(said(&refused), (502, "error: ConnectionRefused".into()));

    assert_eq!(count("w:fetch", "denied"), Some(2.0));
    assert_eq!(count("w:fetch", "allowed"), Some(11.0));
    assert_eq!(count("w:closed", "denied"), Some(1.0));
    assert_eq!(count("w:ungranted", "denied"), Some(1.0));
    other.saw_nothing();
    up.saw_nothing();
}

#[test]
fn check_lists_what_wasi_http_entries_get_wrong() {
    let ws = Workspace::new();
    use wafer_guests::{CORE_CANONICAL, HTTP_FETCH, HTTP_HELLO, P2_TYPES};
    let guest = |name, wasm, extra: &str| function(&ws, name, wasm, extra);
    let hosts_alone = "    allowed_outbound_hosts: [\"http://127.0.0.1:1\"]\n";
    let allow_list = "    imports: [{name: wasi:http, allow: [\"x:1\"]}]\n";
    let entries = [
        guest("hosts-alone", HTTP_FETCH, hosts_alone),
        guest("bad-host", HTTP_FETCH, &outbound(&["ftp://x"])),
        guest("allow-list", HTTP_FETCH, allow_list),
        guest("typed", P2_TYPES, "    method: types#greet\n"),
        guest("core", CORE_CANONICAL, ""),
        guest("component", P2_TYPES, ""),
        guest("hello", HTTP_HELLO, ""),
        endpoint("prefix-typed", "/x/...", Some("POST"), "typed"),
        endpoint("any-typed", "/typed", None, "typed"),
        endpoint("inner-dots", "/hello/.../more", None, "hello"),
        endpoint("hello-any", "/hello/...", None, "hello"),
        endpoint("hello-get", "/hello/...", Some("GET"), "hello"),
    ];
    write_registry(&ws, &entries);
    let run = ws.wafer(&["check", "reg"]);
    // Only these: the proxies and their endpoints are fine.
    run.code(1).stdout_has("problems (9):");
    let not_a_proxy = "field method: missing required field (the export to call); without one \
                       the module is served as a wasi:http proxy, but it";
    for expected in [
        "entry w:hosts-alone: field allowed_outbound_hosts: lists hosts, but the entry does not import wasi:http",
        "entry w:bad-host: field allowed_outbound_hosts[0]: `ftp://x` is not an outbound host (the scheme must be http, https or *)",
        "entry w:allow-list: field imports[0].allow: wasi:http takes its hosts from `allowed_outbound_hosts`",
        "entry w:prefix-typed: field path: /x/...: a path prefix (`/...`) is for wasi:http proxies, and w:typed is not one",
        "entry w:any-typed: field method: missing required field (w:typed is not a wasi:http proxy",
        "entry w:inner-dots: field path: `/hello/.../more`: `...` may only end the path",
        &format!("entry w:core: {not_a_proxy} is a core module, not a component"),
        &format!("entry w:component: {not_a_proxy} does not export wasi:http/incoming-handler"),
        "entry w:hello-get: field path: GET /hello/... answers the same requests as w:hello-any (* /hello/...)",
    ] {
        run.stdout_has(expected);
    }
}

/// A preview 1 program and Dapr component files around it: `reg/` holds
/// the registry entry `w:dapr` (allowed to reach `up`), `components/` the
/// component `fetcher` (the same) plus `closed` (no hosts) and `strict`.
fn dapr_workspace(up: &Upstream) -> Workspace {
    let ws = Workspace::new();
    let allowed = format!("http://{}", up.addr);
    let command = format!("    abi: wasi-command\n{}", outbound(&[&allowed]));
    let entry = function(&ws, "dapr", wafer_guests::DAPR_HTTP_ROUND_TRIP, &command);
    write_registry(&ws, &[entry]);
    ws.copy_guest(wafer_guests::DAPR_HTTP_ROUND_TRIP, "round_trip.wasm");
    let hosts =
        format!("  - name: allowedOutboundHosts\n    value: \"{allowed}, http://127.0.0.1:1\"\n");
    let strict = format!("{hosts}  - name: strictSandbox\n    value: \"true\"\n");
    for (name, metadata) in [
        ("fetcher", &hosts),
        ("closed", &String::new()),
        ("strict", &strict),
    ] {
        ws.write(
            &format!("components/{name}.yaml"),
            format!(
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: bindings.wasm\n  version: v1\n  metadata:\n  - name: url\n    value: file://round_trip.wasm\n{metadata}"
            ),
        );
    }
    ws
}

#[test]
fn a_preview1_program_calls_allowed_hosts_through_the_2023_wasi_http() {
    let up = Upstream::start();
    let other = Upstream::start();
    let ws = dapr_workspace(&up);
    let call = |args: &[&str], stdin: &str| {
        let mut all = vec!["call", "w:dapr"];
        all.extend_from_slice(args);
        all.extend(["--stdin", stdin, "-r", "reg"]);
        ws.wafer(&all)
    };
    call(&["GET", &up.url("/hello")], "").prints("status 200\nhello from upstream");
    let seen = up.next();
    assert_eq!(seen.line, "GET /hello HTTP/1.1");
    assert_eq!(
        field(&seen.headers, "user-agent"),
        Some("WASI-HTTP-Go/0.0.1")
    );
    call(&["GET", &up.url("/query?a=1&b=two")], "").prints("status 200\nGET /query?a=1&b=two");
    assert_eq!(up.next().line, "GET /query?a=1&b=two HTTP/1.1");
    call(&["POST", &up.url("/submit")], "posted body").prints("status 200\nposted body");
    let seen = up.next();
    assert_eq!(seen.line, "POST /submit HTTP/1.1");
    assert_eq!(seen.body, b"posted body");
    assert_eq!(field(&seen.headers, "content-type"), Some("text/plain"));

    let denied = call(&["GET", &other.url("/hello")], "");
    let error = "error: unexpected-error: HTTP request to";
    denied.fails(1, &format!("{error} http://{} denied", other.addr));
    denied.stderr_has("not in allowed_outbound_hosts");
    assert!(!denied.stdout.contains("status 0"), "{}", denied.stdout);
    other.saw_nothing();
    up.saw_nothing();
}

#[test]
fn a_dapr_component_reaches_the_hosts_its_metadata_lists() {
    let up = Upstream::start();
    let other = Upstream::start();
    let ws = dapr_workspace(&up);
    let call = |name: &str, url: &str| ws.wafer(&["call", name, "GET", url, "-r", "components"]);
    call("fetcher", &up.url("/hello")).prints("status 200\nhello from upstream");
    up.next();
    call("fetcher", &other.url("/hello"))
        .fails(1, "not in the component's metadata allowedOutboundHosts");
    call("closed", &up.url("/hello")).fails(
        1,
        "the component lists no hosts in its metadata allowedOutboundHosts",
    );
    call("strict", &up.url("/hello"))
        .code(2)
        .stderr_has("strict sandbox");
    ws.wafer(&["check", "components"])
        .code(1)
        .stdout_has("entry strict:")
        .stdout_has("wasi-http cannot be instantiated in a strict sandbox");
    other.saw_nothing();
    up.saw_nothing();
}

/// Dapr's own request: argv from metadata `args`, comma-separated.
#[cfg(unix)]
#[test]
fn a_dapr_binding_request_calls_out_through_its_component() {
    let up = Upstream::start();
    let other = Upstream::start();
    let ws = dapr_workspace(&up);
    let server = Server::start_with(&ws, &["run", "components", "--dapr-http-port", "0"]);
    let execute = |binding: &str, url: &str| {
        let args = format!("GET,{url}");
        let body = json!({"operation": "execute", "metadata": {"args": args}});
        let path = format!("/v1.0/bindings/{binding}");
        server.request("POST", &path, body.to_string())
    };
    let fetched = execute("fetcher", &up.url("/query?via=dapr"));
    assert_eq!(
        said(&fetched),
        (200, "status 200\nGET /query?via=dapr".into())
    );
    assert_eq!(up.next().line, "GET /query?via=dapr HTTP/1.1");
    let denied = execute("fetcher", &other.url("/hello"));
    assert_eq!(denied.status, 500, "{}", denied.text());
    assert_eq!(
        denied.json()["message"],
        "error invoking output binding fetcher: module closed with exit_code(1)"
    );
    let strict = execute("strict", &up.url("/hello"));
    assert_eq!(strict.status, 500, "{}", strict.text());
    let message = strict.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("strict sandbox"), "{message}");
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("not in the component's metadata allowedOutboundHosts. function=fetcher"),
        "{log}"
    );
    other.saw_nothing();
    up.saw_nothing();
}
