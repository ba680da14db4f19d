//! `nats.endpoint`: functions answering request-reply on NATS subjects,
//! through the real binary and a real nats-server.

use async_nats::HeaderMap;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::Value;

use super::nats_server::NatsServer;
use super::server::{PATIENCE, Server};
use super::util::{ADD_ENTRY, Workspace, header};

/// A function that always traps.
const TRAP_ENTRY: &str = r#"  - name: trap
    kind: function.wat
    source: '(module (func (export "trap") (result i32) unreachable))'
    wit: "trap: func() -> s32;"
    method: trap
"#;

/// A `nats.endpoint` entry `name` on `subject` (queue `queue` if given)
/// for `func`, at `url`.
fn endpoint(name: &str, url: &str, subject: &str, queue: Option<&str>, func: &str) -> String {
    let queue = queue
        .map(|q| format!("    queue: {q}\n"))
        .unwrap_or_default();
    format!(
        "  - name: {name}\n    kind: nats.endpoint\n    urls: [{url}]\n    subject: \"{subject}\"\n{queue}    func: {func}\n"
    )
}

/// A runtime for the test's own NATS client: its connection lives on
/// the runtime's workers, so the test may block between requests.
fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// A request with `payload` (and `headers`) on `subject`: the reply's
/// headers and payload.
async fn request(
    client: &async_nats::Client,
    subject: &str,
    headers: HeaderMap,
    payload: &str,
) -> (Option<HeaderMap>, String) {
    let reply = tokio::time::timeout(
        PATIENCE,
        client.request_with_headers(subject.to_string(), headers, payload.to_string().into()),
    )
    .await
    .unwrap_or_else(|_| panic!("no reply on {subject} in time"))
    .unwrap_or_else(|e| panic!("request on {subject}: {e}"));
    (
        reply.headers,
        String::from_utf8_lossy(&reply.payload).into_owned(),
    )
}

/// The error kind and message of a failed call's reply (to a request with
/// `headers`), the kind checked against its header.
async fn error_kind(
    client: &async_nats::Client,
    subject: &str,
    headers: HeaderMap,
    payload: &str,
) -> (String, String) {
    let (headers, body) = request(client, subject, headers, payload).await;
    let json: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let kind = json["error"]["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    let header = headers.as_ref().and_then(|h| h.get("Wafer-Error"));
    assert_eq!(header.map(|h| h.as_str()), Some(kind), "{body}");
    (
        kind.to_string(),
        json["error"]["message"].as_str().unwrap().to_string(),
    )
}

#[cfg(unix)]
#[test]
fn functions_answer_requests_and_errors_come_back_by_kind() {
    let nats = NatsServer::start();
    let ws = Workspace::new();
    let args_hash = ws.copy_guest(wafer_guests::P1_ARGS, "reg/bin/args.wasm");
    let url = &nats.url;
    let yaml = format!(
        "{}{ADD_ENTRY}{TRAP_ENTRY}  - name: bin\n    kind: fs.directory\n    directory: bin\n  - name: args\n    kind: function.wasm\n    fs: bin\n    path: args.wasm\n    hash: {args_hash}\n    abi: wasi-command\n{}{}{}{}",
        header("n"),
        endpoint("math", url, "math.add", Some("math"), "add"),
        endpoint("trap-sub", url, "math.trap", None, "trap"),
        endpoint("args-sub", url, "run.args", None, "args"),
        endpoint("wild", url, "any.*", None, "add"),
    );
    ws.write("reg/_index.yaml", yaml);
    // Endpoints are bound in id order: n:wild is the last.
    let mut server = Server::start_until(
        &ws,
        &["run", "reg"],
        "Serving function n:add on NATS subject any.* (queue any.*)",
    );
    let tokio = tokio();
    let client = tokio.block_on(async_nats::connect(url.as_str())).unwrap();
    tokio.block_on(async {
        let (headers, body) = request(&client, "math.add", HeaderMap::new(), "[2, 40]").await;
        assert_eq!(body, "42");
        assert!(headers.is_none(), "{headers:?}");
        let (_, body) = request(&client, "any.thing", HeaderMap::new(), "[1, 2]").await;
        assert_eq!(body, "3");

        let (kind, message) = error_kind(&client, "math.add", HeaderMap::new(), "[1,").await;
        assert_eq!(kind, "bad_input");
        assert!(message.contains("not JSON"), "{message}");
        let (kind, message) =
            error_kind(&client, "math.add", HeaderMap::new(), r#"{"a": 1}"#).await;
        assert_eq!(kind, "bad_input");
        assert!(message.contains("JSON array"), "{message}");
        let (kind, message) =
            error_kind(&client, "math.add", HeaderMap::new(), r#"["x", 1]"#).await;
        assert_eq!(kind, "bad_input");
        assert!(message.contains("args[0]"), "{message}");
        let (kind, _) = error_kind(&client, "math.trap", HeaderMap::new(), "[]").await;
        assert_eq!(kind, "trap");

        // A WASI program: the payload is its stdin, `Wafer-Args` its
        // arguments.
        let mut args = HeaderMap::new();
        args.insert("Wafer-Args", "a,b");
        let (headers, body) = request(&client, "run.args", args, "").await;
        assert_eq!(body, "args\na\nb");
        let exit = headers.as_ref().and_then(|h| h.get("Wafer-Exit-Code"));
        assert_eq!(exit.map(|e| e.as_str()), Some("0"));

        client.publish("math.add", "[1, 1]".into()).await.unwrap();
        client.flush().await.unwrap();
    });
    // A message nobody can answer is logged, and the endpoint carries on.
    server.wait_for_line("without a reply subject");
    let (_, body) = tokio.block_on(request(&client, "math.add", HeaderMap::new(), "[1, 1]"));
    assert_eq!(body, "2");

    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("Stopped."), "{log}");
}

#[cfg(unix)]
#[test]
fn nodes_on_one_subject_and_queue_share_the_calls() {
    const CALLS: usize = 200;
    let nats = NatsServer::start();
    let ws = Workspace::new();
    let yaml = format!(
        "{}{ADD_ENTRY}  - name: ops\n    kind: http.service\n    addr: 127.0.0.1:0\n{}",
        header("s"),
        endpoint("math", &nats.url, "math.add", Some("math"), "add"),
    );
    ws.write("reg/_index.yaml", yaml);
    let ready = "on NATS subject math.add (queue math)";
    let mut nodes = [
        Server::start_until(&ws, &["run", "reg"], ready),
        Server::start_until(&ws, &["run", "reg"], ready),
    ];
    for node in &mut nodes {
        node.base = node.base_of("s:ops");
    }
    let tokio = tokio();
    tokio.block_on(async {
        let client = async_nats::connect(nats.url.as_str()).await.unwrap();
        let mut replies: FuturesUnordered<_> = (0..CALLS)
            .map(|i| {
                let client = &client;
                async move {
                    let payload = format!("[{i}, 1]");
                    (
                        i,
                        request(client, "math.add", HeaderMap::new(), &payload)
                            .await
                            .1,
                    )
                }
            })
            .collect();
        while let Some((i, body)) = replies.next().await {
            assert_eq!(body, (i + 1).to_string());
        }
    });
    // A call is counted before its reply goes out.
    let calls: Vec<f64> = nodes
        .iter()
        .map(|node| {
            node.metric(
                "wafer_function_calls_total",
                &[("function", "s:add"), ("outcome", "ok")],
            )
            .unwrap_or(0.0)
        })
        .collect();
    assert_eq!(calls.iter().sum::<f64>(), CALLS as f64, "{calls:?}");
    assert!(
        calls.iter().all(|&n| n > 0.0),
        "one node answered everything: {calls:?}"
    );
    for node in nodes {
        let (code, log) = node.stop();
        assert_eq!(code, Some(0), "{log}");
    }
}

/// A call whose guest loops for as long as its argument is not 0, up to
/// its limit (generous: the test is over long before).
const SPIN_ENTRY: &str = r#"  - name: spin
    kind: function.wat
    source: '(module (func (export "spin") (param i32) (result i32) (block (loop (br_if 1 (i32.eqz (local.get 0))) (br 0))) i32.const 7))'
    wit: "spin: func(forever: s32) -> s32;"
    method: spin
    limits:
      max_execution_ms: 600000
"#;

/// A wafer of namespace `ns` serving [`SPIN_ENTRY`] on subject `spin`,
/// with an HTTP service for its metrics; the broker goes with it.
fn serve_spin(ns: &str) -> (NatsServer, Workspace, Server) {
    let nats = NatsServer::start();
    let ws = Workspace::new();
    let yaml = format!(
        "{}{SPIN_ENTRY}  - name: ops\n    kind: http.service\n    addr: 127.0.0.1:0\n{}",
        header(ns),
        endpoint("spinner", &nats.url, "spin", None, "spin"),
    );
    ws.write("reg/_index.yaml", yaml);
    let mut server = Server::start_until(&ws, &["run", "reg"], "on NATS subject spin");
    server.base = server.base_of(&format!("{ns}:ops"));
    (nats, ws, server)
}

#[cfg(unix)]
#[test]
fn a_guest_that_loops_holds_back_no_other_request_on_its_subject() {
    let (nats, _ws, server) = serve_spin("l");
    let tokio = tokio();
    let client = tokio
        .block_on(async_nats::connect(nats.url.as_str()))
        .unwrap();
    tokio.block_on(async {
        let nobody_waits = client.new_inbox();
        client
            .publish_with_reply("spin", nobody_waits, "[1]".into())
            .await
            .unwrap();
        client.flush().await.unwrap();
    });
    // The looping call has started once its function counts a call
    // running; the requests after it on the same subject are answered
    // while it still runs.
    let running = [("function", "l:spin"), ("state", "running")];
    server.wait_for_metric("wafer_function_calls_in_flight", &running, 1.0);
    for _ in 0..3 {
        let (_, body) = tokio.block_on(request(&client, "spin", HeaderMap::new(), "[0]"));
        assert_eq!(body, "7");
    }
    assert_eq!(
        server.metric("wafer_function_calls_in_flight", &running),
        Some(1.0),
        "the looping call ended"
    );
    // No need to wait for it (a stop would, for its grace period).
    server.kill();
}

#[cfg(unix)]
#[test]
fn a_call_ends_when_its_caller_stops_waiting() {
    let (nats, _ws, server) = serve_spin("d");
    let tokio = tokio();
    let client = tokio
        .block_on(async_nats::connect(nats.url.as_str()))
        .unwrap();
    let with_timeout = |ms: &str| {
        let mut headers = HeaderMap::new();
        headers.insert("Wafer-Timeout-Ms", ms);
        headers
    };
    tokio.block_on(async {
        // The guest loops far past 200 ms; its caller waits that long.
        let (kind, message) = error_kind(&client, "spin", with_timeout("200"), "[1]").await;
        assert_eq!(kind, "time_limit", "{message}");
        assert!(message.contains("at its caller's deadline"), "{message}");
        // A call that ends in time answers as ever.
        let (_, body) = request(&client, "spin", with_timeout("60000"), "[0]").await;
        assert_eq!(body, "7");
        let (kind, message) = error_kind(&client, "spin", with_timeout("soon"), "[0]").await;
        assert_eq!(kind, "bad_input", "{message}");
        assert!(message.contains("Wafer-Timeout-Ms"), "{message}");
    });
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn a_server_that_cannot_be_reached_stops_the_run() {
    let ws = Workspace::new();
    // Port 1 on the loopback: nothing listens there.
    let yaml = format!(
        "{}{ADD_ENTRY}{}",
        header("u"),
        endpoint("math", "nats://127.0.0.1:1", "math.add", None, "add"),
    );
    ws.write("reg/_index.yaml", yaml);
    let run = ws.wafer(&["run", "reg"]);
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    run.stderr_has("u:math: cannot connect to nats://127.0.0.1:1");
}

#[test]
fn check_lists_every_problem_of_an_endpoint() {
    let ws = Workspace::new();
    let yaml = format!(
        r#"{}{ADD_ENTRY}  - name: proxy
    kind: function.wat
    source: '(module)'
  - name: no-subject
    kind: nats.endpoint
    urls: nats://127.0.0.1:4222
    func: add
  - name: lost
    kind: nats.endpoint
    urls: nats://127.0.0.1:4222
    subject: math.lost
    func: nowhere
  - name: web
    kind: nats.endpoint
    urls: nats://127.0.0.1:4222
    subject: web
    func: proxy
  - name: bad-url
    kind: nats.endpoint
    urls: ["nats://127.0.0.1:4222", "http://[::1"]
    subject: math.ok
    func: add
  - name: no-creds
    kind: nats.endpoint
    urls: nats://127.0.0.1:4222
    subject: math.creds
    func: add
    auth: {{user_credentials_file: missing.creds}}
"#,
        header("c")
    );
    ws.write("reg/_index.yaml", yaml);
    let run = ws.wafer(&["check", "--json", "reg"]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    let mut found: Vec<(String, String, String)> = json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["entry"] != "c:proxy")
        .map(|p| {
            assert!(p["file"].as_str().unwrap().ends_with("_index.yaml"), "{p}");
            let text = |key: &str| p[key].as_str().unwrap().to_string();
            (text("entry"), text("field"), text("kind"))
        })
        .collect();
    found.sort();
    let expected = [
        ("c:bad-url", "urls[1]", "invalid_value"),
        ("c:lost", "func", "reference"),
        ("c:no-creds", "auth.user_credentials_file", "invalid_value"),
        ("c:no-subject", "subject", "missing_field"),
        ("c:web", "func", "invalid_value"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(e, f, k)| (e.to_string(), f.to_string(), k.to_string()))
        .collect();
    assert_eq!(found, expected, "{}", run.stdout);
    let text = ws.wafer(&["check", "reg"]);
    assert!(
        text.stdout.contains("c:web") && text.stdout.contains("wasi:http proxy"),
        "{}",
        text.stdout
    );
}
