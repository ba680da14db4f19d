//! `wafer run` under misuse and load: every error status, the service's
//! request limits, guests that spin, and a stop while requests run. Each
//! wait is for a state (a connection a guest made, a counter in
//! `/metrics`, a log line), never for time.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::json;

use super::server::{Server, send, wait_until};
use super::util::{ADD_ENTRY, Workspace, header};

/// `types#hold` connects to the address it is given and returns when the
/// connection closes: a call that runs for exactly as long as a test keeps
/// the connection it [`accept`]s.
fn hold_entry(ws: &Workspace, pool: &str) -> String {
    let hash = ws.copy_guest(wafer_guests::P2_TYPES, "reg/types.wasm");
    format!(
        "  - name: wasm\n    kind: fs.directory\n    directory: .\n  - name: hold\n    kind: function.wasm\n    fs: wasm\n    path: types.wasm\n    hash: {hash}\n    method: types#hold\n    pool: {pool}\n    imports:\n      - name: wasi:sockets\n        allow: [\"127.0.0.1:*\"]\n"
    )
}

/// A server with `NAMESPACE:hold` on one service, the listener its calls
/// connect to, and the arguments that make them connect there.
fn hold_server(namespace: &str) -> (Workspace, Server, TcpListener, String) {
    let ws = Workspace::new();
    let yaml = format!(
        "{}{}  - name: api\n    kind: http.service\n    addr: 127.0.0.1:0\n",
        header(namespace),
        hold_entry(&ws, "{type: lazy, max_size: 4}")
    );
    ws.write("reg/_index.yaml", yaml);
    let server = Server::start(&ws);
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let hold_args = json!([holder.local_addr().unwrap().to_string()]).to_string();
    (ws, server, holder, hold_args)
}

/// The connection a held call made: the guest is running.
fn accept(holder: &TcpListener) -> std::net::TcpStream {
    holder.accept().unwrap().0
}

/// `POST url` with `body` on a thread of its own.
fn in_background(url: String, body: String) -> std::thread::JoinHandle<super::server::Response> {
    std::thread::spawn(move || send("POST", &url, body))
}

fn error_kind(response: &super::server::Response) -> String {
    response.json()["error"]["kind"]
        .as_str()
        .unwrap()
        .to_string()
}

#[cfg(unix)]
#[test]
fn every_error_has_its_status() {
    let ws = Workspace::new();
    ws.copy_guest(wafer_guests::WAT_TRAP, "reg/trap.wat");
    ws.copy_guest(wafer_guests::WAT_SPIN, "reg/spin.wat");
    let yaml = format!(
        r#"{header}{ADD_ENTRY}  - name: trap
    kind: function.wat
    source: file://trap.wat
    method: trap
  - name: slow
    kind: function.wat
    source: file://spin.wat
    method: spin
    limits:
      max_execution_ms: 200
  - name: endless
    kind: function.wat
    source: file://spin.wat
    method: spin
    limits:
      max_execution_ms: 3600000
  - name: broken
    kind: function.wat
    source: '(module (func (export "add")))'
    method: add
    pool: {{type: bogus}}
{hold}  - name: api
    kind: http.service
    addr: 127.0.0.1:0
    max_body_bytes: 1024
  - name: tight
    kind: http.service
    addr: 127.0.0.1:0
    max_concurrent_requests: 1
  - name: hasty
    kind: http.service
    addr: 127.0.0.1:0
    max_request_ms: 300
"#,
        header = header("l"),
        hold = hold_entry(&ws, "{type: lazy, max_size: 1, buffer: 0}"),
    );
    ws.write("reg/_index.yaml", yaml);
    let mut server = Server::start(&ws);
    let api = server.base_of("l:api");
    let call = |base: &str, id: &str, body: &str| {
        send(
            "POST",
            &format!("{base}/v1/functions/{id}"),
            body.to_string(),
        )
    };

    let cases = [
        ("l:add", "[1,", 400, "bad_input"),
        ("l:add", r#"["x", 1]"#, 400, "bad_input"),
        ("l:nope", "[]", 404, "unknown_function"),
        ("l:broken", "[1, 2]", 422, "refused"),
        ("l:trap", "[]", 500, "trap"),
        ("l:slow", "[]", 504, "time_limit"),
    ];
    for (id, body, status, kind) in cases {
        let response = call(&api, id, body);
        assert_eq!(response.status, status, "{id} {body}: {}", response.text());
        assert_eq!(error_kind(&response), kind, "{}", response.text());
    }
    let wrong = call(&api, "l:add", r#"["x", 1]"#).text();
    assert!(wrong.contains("args[0]"), "the argument is named: {wrong}");
    let refused = call(&api, "l:broken", "[]").json();
    assert!(
        refused["error"]["problems"][0]
            .as_str()
            .unwrap()
            .contains("pool"),
        "{refused}"
    );
    let large = call(&api, "l:add", &format!("[{}1]", " ".repeat(2048)));
    assert_eq!(
        (large.status, error_kind(&large).as_str()),
        (413, "body_too_large")
    );
    let unmatched = send("GET", &format!("{api}/nowhere"), "");
    assert_eq!(
        (unmatched.status, error_kind(&unmatched).as_str()),
        (404, "not_found")
    );
    let wrong_method = send("GET", &format!("{api}/v1/functions/l:add"), "");
    assert_eq!(wrong_method.status, 405);
    assert_eq!(error_kind(&wrong_method), "method_not_allowed");

    // A full pool: the one instance is held, the queue holds none.
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let hold_args = json!([holder.local_addr().unwrap().to_string()]).to_string();
    let held = in_background(format!("{api}/v1/functions/l:hold"), hold_args.clone());
    let connection = accept(&holder);
    let full = call(&api, "l:hold", &hold_args);
    assert_eq!(
        (full.status, error_kind(&full).as_str()),
        (503, "pool_full")
    );
    assert_eq!(full.header("retry-after"), Some("1"));
    drop(connection);
    let held = held.join().unwrap();
    assert_eq!((held.status, held.text().as_str()), (200, "0"));

    // A busy service: its one request at a time is running.
    let tight = server.base_of("l:tight");
    let held = in_background(format!("{tight}/v1/functions/l:hold"), hold_args.clone());
    let connection = accept(&holder);
    let busy = call(&tight, "l:add", "[1, 2]");
    assert_eq!((busy.status, error_kind(&busy).as_str()), (503, "busy"));
    assert_eq!(busy.header("retry-after"), Some("1"));
    assert_eq!(send("GET", &format!("{tight}/healthz"), "").status, 200);
    drop(connection);
    assert_eq!(held.join().unwrap().status, 200);

    // A request over its service's time is answered 504, whether its
    // guest waits on the host or computes on its own thread.
    let hasty = server.base_of("l:hasty");
    for (id, args) in [("l:hold", hold_args.as_str()), ("l:endless", "[]")] {
        let late = call(&hasty, id, args);
        assert_eq!(
            (late.status, error_kind(&late).as_str()),
            (504, "time_limit")
        );
        assert!(late.text().contains("deadline"), "{}", late.text());
    }

    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("POST /v1/functions/{id}") && log.contains("function=\"l:trap\" status=500"),
        "one access-log line per request:\n{log}"
    );
}

#[cfg(unix)]
#[test]
fn spinning_guests_do_not_stop_the_server() {
    let ws = Workspace::new();
    ws.copy_guest(wafer_guests::WAT_SPIN, "reg/spin.wat");
    // As many spinners as the server has workers (Tokio starts one per
    // core), each with an hour to run.
    let workers = std::thread::available_parallelism().unwrap().get();
    let yaml = format!(
        r#"{header}  - name: spin
    kind: function.wat
    source: file://spin.wat
    method: spin
    pool: {{type: lazy, max_size: {workers}}}
    limits:
      max_execution_ms: 3600000
{ADD_ENTRY}  - name: api
    kind: http.service
    addr: 127.0.0.1:0
"#,
        header = header("s"),
    );
    ws.write("reg/_index.yaml", yaml);
    let server = Server::start(&ws);
    let url = format!("{}/v1/functions/s:spin", server.base);
    for _ in 0..workers {
        let url = url.clone();
        // Never answered: the process ends under it, and the error that
        // gives the client is expected.
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder().timeout(None).build();
            client.map(|client| client.post(url).body("[]").send())
        });
    }
    server.wait_for_metric(
        "wafer_function_calls_in_flight",
        &[("function", "s:spin"), ("state", "running")],
        workers as f64,
    );
    assert_eq!(
        server.post("/v1/functions/s:add", "[2, 40]"),
        (200, "42".into())
    );
    // The spinners end with the process; their clients see it close.
}

#[cfg(unix)]
#[test]
fn a_stop_finishes_the_requests_in_flight_and_takes_no_new_ones() {
    let (_ws, server, holder, hold_args) = hold_server("d");
    let addr = server.addr();
    let held = in_background(format!("{}/v1/functions/d:hold", server.base), hold_args);
    let connection = accept(&holder);

    server.interrupt();
    // The listener closes: new connections are refused.
    wait_until(
        "the listener to refuse connections",
        || std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_ok(),
        |taken| !taken,
    );
    // The request in flight still gets its answer.
    drop(connection);
    let held = held.join().unwrap();
    assert_eq!((held.status, held.text().as_str()), (200, "0"));
    let (code, log) = server.wait();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("Stopped.") && !log.contains("panicked"),
        "{log}"
    );
}

#[cfg(unix)]
#[test]
fn a_client_that_hangs_up_is_logged_and_counted_as_499() {
    use std::io::Write;
    let (_ws, server, holder, body) = hold_server("c");
    let mut client = std::net::TcpStream::connect(server.addr()).unwrap();
    write!(
        client,
        "POST /v1/functions/c:hold HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let connection = accept(&holder);
    drop(client);
    let hung_up = [("route", "/v1/functions/{id}"), ("status", "499")];
    server.wait_for_metric("wafer_http_requests_total", &hung_up, 1.0);
    drop(connection);
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("function=\"c:hold\" status=499"), "{log}");
}
