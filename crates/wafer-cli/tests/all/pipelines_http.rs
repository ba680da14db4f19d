//! `wafer run` on pipelines that speak HTTP: the `http_server` input,
//! answered once the output has a message, and the `http_client` output,
//! with its retries, against a server each test runs itself.

use std::net::TcpListener;
use std::sync::mpsc::Receiver;

use wafer_guests::{BENTHOS_LOUDER, BENTHOS_META};
use wafer_pipeline::inputs::MAX_BATCH;

use crate::pipelines::{LOUD, summary_line as summary};
use crate::receiver::{Request, http_receiver};
use crate::server::{PATIENCE, Server, wait_until};
use crate::util::{Workspace, header};

/// A client with no time limit of its own: the server's answers are the
/// subject.
fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .unwrap()
}

/// The URL of the `http_server` input, from its `Listening on` line (which
/// may come before or after an HTTP service's).
fn input_url(server: &mut Server, path: &str) -> String {
    if server.base.ends_with(path) {
        return server.base.clone();
    }
    let line = server.wait_for_line(&format!("{path} "));
    let at = line.find("http://").unwrap();
    line[at..].split_whitespace().next().unwrap().to_string()
}

#[cfg(unix)]
#[test]
fn each_request_is_answered_once_the_output_has_it() {
    let ws = Workspace::new();
    ws.copy_guest(BENTHOS_LOUDER, "louder.wasm");
    ws.write(
        "ingest.yaml",
        r#"
input:
  http_server: {address: "127.0.0.1:0"}
pipeline:
  threads: 2
  processors:
    - wasm: {module_path: louder.wasm}
output:
  file: {path: out.txt}
"#,
    );
    let server = Server::start_with(&ws, &["run", "ingest.yaml"]);
    let url = server.base.clone();
    assert!(url.ends_with("/post"), "{url}");
    let client = client();
    // Another verb or path never reaches the pipeline.
    let refused = client.get(&url).send().unwrap();
    assert_eq!(refused.status(), 405);
    let elsewhere = client
        .post(url.replace("/post", "/other"))
        .body("x")
        .send()
        .unwrap();
    assert_eq!(elsewhere.status(), 404);
    let out = ws.path().join("out.txt");
    for i in 0..100 {
        let response = client
            .post(&url)
            .body(format!("message {i}"))
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "message {i}");
        assert_eq!(response.text().unwrap(), "");
        // Answered only once the output had it: it is in the file already.
        let written = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<&str> = written.lines().collect();
        assert_eq!(lines.len(), i + 1, "{written}");
        assert!(
            lines.contains(&format!("message {i}{LOUD}").as_str()),
            "message {i} answered before it was written:\n{written}"
        );
    }
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        summary(&log),
        "pipeline ingest: received 100, processed 100, dropped 0, failed 0"
    );
}

#[cfg(unix)]
#[test]
fn a_path_ending_in_a_slash_takes_every_path_under_it_with_its_metadata() {
    let ws = Workspace::new();
    ws.copy_guest(BENTHOS_META, "meta.wasm");
    // `meta` writes `<metadata name>:<message>`: the query's `name`.
    ws.write(
        "hook.yaml",
        r#"
input:
  http_server:
    address: "127.0.0.1:0"
    path: /hook/
    allowed_verbs: [POST, PUT]
pipeline:
  processors:
    - wasm: {module_path: meta.wasm}
output:
  file: {path: out.txt}
"#,
    );
    let server = Server::start_with(&ws, &["run", "hook.yaml"]);
    let url = server.base.clone();
    assert!(url.ends_with("/hook/"), "{url}");
    let client = client();
    let put = client
        .put(format!("{url}orders/7?name=bob&name=alice"))
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(put.status(), 200);
    let bare = client
        .post(url.trim_end_matches('/'))
        .body("x")
        .send()
        .unwrap();
    assert_eq!(bare.status(), 404);
    assert_eq!(
        std::fs::read_to_string(ws.path().join("out.txt")).unwrap(),
        "bob:hello\n"
    );
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
}

#[cfg(unix)]
#[test]
fn a_request_the_output_does_not_confirm_in_time_is_answered_408() {
    let ws = Workspace::new();
    // Takes connections (the system does) but never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}/", silent.local_addr().unwrap());
    ws.write(
        "slow.yaml",
        format!(
            r#"
input:
  http_server: {{address: "127.0.0.1:0", timeout: 100ms}}
output:
  label: webhook
  http_client: {{url: "{silent_url}", timeout: 2s, retries: 0}}
"#
        ),
    );
    let server = Server::start_with(&ws, &["run", "slow.yaml"]);
    let response = client().post(&server.base).body("late").send().unwrap();
    assert_eq!(response.status(), 408);
    assert_eq!(response.text().unwrap(), "Request timed out");
    // The output then times out too, and the run fails on it.
    let (code, log) = server.wait();
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("output webhook"), "{log}");
    assert!(log.contains("timed out"), "{log}");
    assert_eq!(
        summary(&log),
        "pipeline slow: received 1, processed 0, dropped 0, failed 0"
    );
    drop(silent);
}

#[cfg(unix)]
#[test]
fn a_failed_output_answers_502_with_its_error() {
    let ws = Workspace::new();
    let (hook, requests) = test_server(vec![500], None);
    // An HTTP service keeps the process up after the pipeline failed, so
    // that the answer is seen whole.
    ws.write(
        "_index.yaml",
        format!(
            r#"{}  - name: api
    kind: http.service
    addr: 127.0.0.1:0
  - name: relay
    kind: pipeline
    input: {{http_server: {{address: "127.0.0.1:0"}}}}
    output: {{label: webhook, http_client: {{url: "{hook}", retries: 0}}}}
"#,
            header("hooks")
        ),
    );
    let mut server = Server::start_with(&ws, &["run", "."]);
    let url = input_url(&mut server, "/post");
    let response = client().post(&url).body("lost").send().unwrap();
    assert_eq!(response.status(), 502);
    let error = response.text().unwrap();
    assert!(error.contains("HTTP 500 Internal Server Error"), "{error}");
    assert_eq!(requests.try_iter().count(), 1);
    let (code, log) = server.stop();
    assert_eq!(code, Some(1), "{log}");
    assert_eq!(
        summary(&log),
        "pipeline hooks:relay: received 1, processed 0, dropped 0, failed 0"
    );
}

#[test]
fn http_client_retries_and_delivers_each_message_once_in_order() {
    let ws = Workspace::new();
    // The first message is refused twice: once plainly, once with a 429
    // (Benthos' `backoff_on`); every later request succeeds.
    let (url, requests) = test_server(vec![500, 429, 200], None);
    let lines: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    ws.write("in.txt", lines.join("\n") + "\n");
    ws.write(
        "deliver.yaml",
        format!(
            r#"
input:
  file: {{paths: [in.txt]}}
pipeline:
  threads: 1
output:
  label: webhook
  http_client:
    url: "{url}"
    verb: PUT
    headers: {{X-Source: wafer, X-Attempt-Limit: 3}}
    retry_period: 10ms
"#
        ),
    );
    let run = ws.wafer(&["run", "deliver.yaml"]);
    run.code(0).stderr_has("trying again");
    assert_eq!(
        summary(&run.stderr),
        "pipeline deliver: received 20, processed 20, dropped 0, failed 0"
    );
    let seen: Vec<Request> = requests.try_iter().collect();
    assert_eq!(seen.len(), 22, "{seen:?}");
    let statuses: Vec<u16> = seen.iter().map(|r| r.status).collect();
    assert_eq!(&statuses[..3], [500, 429, 200]);
    assert_eq!(seen[0].text(), "m0");
    assert_eq!(seen[1].text(), "m0");
    let delivered: Vec<&str> = seen
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.text())
        .collect();
    assert_eq!(delivered, lines);
    for request in &seen {
        assert_eq!(request.method(), "PUT");
        assert_eq!(request.header("x-source"), Some("wafer"));
        assert_eq!(request.header("x-attempt-limit"), Some("3"));
        // The file input's metadata `path` is not sent as a header.
        assert_eq!(request.header("path"), None);
    }
}

#[test]
fn http_client_gives_up_after_its_retries_and_the_run_fails() {
    let ws = Workspace::new();
    let (url, requests) = test_server(vec![500], None);
    ws.write("in.txt", "m0\nm1\nm2\n");
    ws.write(
        "refused.yaml",
        format!(
            r#"
input:
  file: {{paths: [in.txt]}}
output:
  label: webhook
  http_client: {{url: "{url}", retries: 1, retry_period: 10ms}}
"#
        ),
    );
    let run = ws.wafer(&["run", "refused.yaml"]);
    run.code(1)
        .stderr_has("output webhook")
        .stderr_has("HTTP 500 Internal Server Error")
        .stderr_has("(2 tries)");
    assert!(
        summary(&run.stderr).contains("processed 0, dropped 0, failed 0"),
        "{}",
        run.stderr
    );
    // The first message, twice; nothing after it.
    let bodies: Vec<String> = requests.try_iter().map(|r| r.text().to_string()).collect();
    assert_eq!(bodies, ["m0", "m0"]);
}

#[test]
fn a_busy_address_and_a_bad_url_are_named() {
    let ws = Workspace::new();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap().to_string();
    ws.write(
        "bad.yaml",
        format!(
            r#"
input:
  http_server: {{address: "{address}"}}
output:
  http_client: {{url: "ftp://example.com/", verb: POST}}
"#
        ),
    );
    ws.wafer(&["run", "bad.yaml"])
        .code(2)
        .stderr_has("input.http_server.address")
        .stderr_has(&format!("cannot listen on {address}"))
        .stderr_has("output.http_client.url")
        .stderr_has("not `ftp://example.com/`");
    ws.write(
        "typo.yaml",
        "input: {stdin: {}}\noutput: {http_client: {url: \"http://127.0.0.1:1/\", max_retries: 1}}\n",
    );
    ws.wafer(&["run", "typo.yaml"])
        .code(2)
        .stderr_has("output.http_client.max_retries")
        .stderr_has("unknown field `max_retries`");
    drop(busy);
}

/// The most messages a pipeline of `threads` workers has in flight when
/// its input makes full batches: `4 × threads + 2` batches (each takes a
/// place before it is queued and gives it back once written and
/// acknowledged) of `MAX_BATCH` messages (`generate` without an interval
/// makes batches that large).
fn bound(threads: usize) -> f64 {
    ((4 * threads + 2) * MAX_BATCH) as f64
}

#[cfg(unix)]
#[test]
fn a_slow_output_bounds_the_messages_in_flight() {
    // Both modes take places the same way; what ordering adds (batches
    // finished early, waiting for a slow one) is the next test's.
    for (threads, ordered) in [(1, false), (2, true)] {
        slow_output_bounds_the_messages_in_flight(threads, ordered);
    }
}

fn slow_output_bounds_the_messages_in_flight(threads: usize, ordered: bool) {
    let ws = Workspace::new();
    ws.copy_guest(BENTHOS_LOUDER, "reg/louder.wasm");
    let (release, gate) = std::sync::mpsc::channel();
    let (hook, requests) = test_server(vec![200], Some(gate));
    let registry = format!(
        r#"{}  - name: api
    kind: http.service
    addr: "127.0.0.1:0"
  - name: slow
    kind: pipeline
    input: {{generate: {{mapping: 'root = "m"', count: 0, interval: ""}}}}
    pipeline: {{threads: {threads}, ordered: {ordered}, processors: [{{wasm: {{module_path: louder.wasm}}}}]}}
    output: {{http_client: {{url: "{hook}", timeout: 600s}}}}
"#,
        header("t")
    );
    ws.write("reg/_index.yaml", registry);
    let server = Server::start(&ws);
    // The output's first request arrived and is held: from now on nothing
    // is confirmed, and the endless input fills the pipeline up to its
    // bound, exactly, and waits there.
    requests.recv_timeout(PATIENCE).unwrap();
    let pipeline = ("pipeline", "t:slow");
    let full = bound(threads);
    server.wait_for_metric("wafer_pipeline_messages_in_flight", &[pipeline], full);
    for _ in 0..20 {
        let received = server
            .metric(
                "wafer_pipeline_messages_total",
                &[pipeline, ("outcome", "received")],
            )
            .unwrap();
        let in_flight = server
            .metric("wafer_pipeline_messages_in_flight", &[pipeline])
            .unwrap();
        assert_eq!((received, in_flight), (full, full), "{threads} {ordered}");
    }
    // Once the output answers, stopping loses nothing the input produced.
    release.send(()).unwrap();
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_received_all_processed(&log, "t:slow");
}

/// Asserts that the run's summary says every message it received was
/// processed.
fn assert_received_all_processed(log: &str, name: &str) {
    let line = summary(log);
    let received = line
        .split("received ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap();
    assert_eq!(
        line,
        format!("pipeline {name}: received {received}, processed {received}, dropped 0, failed 0")
    );
}

#[cfg(unix)]
#[test]
fn one_slow_batch_holds_back_at_most_the_bound_when_ordered() {
    let ws = Workspace::new();
    // `types#hold` connects to the address it is given and returns when
    // the connection closes. The test keeps the first connection open and
    // closes every other at once: one message, the first a worker took,
    // is held, and its batch with it; being ordered, every later batch
    // waits for it. 20,000 messages are many times the bound: without it
    // they would all pile up behind the held one.
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = holder.local_addr().unwrap();
    let hash = ws.copy_guest(wafer_guests::P2_TYPES, "reg/types.wasm");
    ws.write(
        "reg/_index.yaml",
        format!(
            r#"{}  - name: wasm
    kind: fs.directory
    directory: .
  - name: hold
    kind: function.wasm
    fs: wasm
    path: types.wasm
    hash: {hash}
    method: types#hold
    pool: {{type: lazy, max_size: 4}}
    limits: {{max_execution_ms: 600000}}
    imports:
      - name: wasi:sockets
        allow: ["127.0.0.1:*"]
  - name: api
    kind: http.service
    addr: "127.0.0.1:0"
  - name: held
    kind: pipeline
    input: {{generate: {{mapping: 'root = "\"{address}\""', count: 20000, interval: ""}}}}
    pipeline:
      threads: 2
      ordered: true
      processors: [{{label: hold, call: {{function: t:hold}}}}]
    output: {{drop: {{}}}}
"#,
            header("t")
        ),
    );
    let server = Server::start(&ws);
    let (held, _) = holder.accept().unwrap();
    std::thread::spawn(move || {
        for connection in holder.incoming() {
            drop(connection);
        }
    });
    // The other worker goes on, and finished batches wait behind the held
    // one until no place is left: the held batch and nine more are in
    // flight, all but the held one through the processor.
    let pipeline = ("pipeline", "t:held");
    let full = bound(2);
    let read = || {
        let in_flight = server
            .metric("wafer_pipeline_messages_in_flight", &[pipeline])
            .unwrap();
        let processed = server
            .metric(
                "wafer_pipeline_messages_total",
                &[pipeline, ("outcome", "processed")],
            )
            .unwrap();
        let through = server
            .metric(
                "wafer_pipeline_processor_duration_seconds_count",
                &[pipeline, ("processor", "hold")],
            )
            .unwrap_or(0.0);
        (in_flight, through - processed)
    };
    let waiting = full - MAX_BATCH as f64;
    wait_until("the pipeline to fill up", read, |seen| {
        *seen == (full, waiting)
    });
    for _ in 0..20 {
        assert_eq!(read(), (full, waiting));
    }
    // Released, everything flows again, and nothing is lost.
    drop(held);
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_received_all_processed(&log, "t:held");
}

#[cfg(unix)]
#[test]
fn requests_over_max_concurrent_requests_are_answered_503_at_once() {
    let ws = Workspace::new();
    let (release, gate) = std::sync::mpsc::channel();
    let (hook, requests) = test_server(vec![200], Some(gate));
    ws.write(
        "busy.yaml",
        format!(
            r#"
input:
  http_server: {{address: "127.0.0.1:0", max_concurrent_requests: 1, timeout: 600s}}
output:
  http_client: {{url: "{hook}", timeout: 600s}}
"#
        ),
    );
    let server = Server::start_with(&ws, &["run", "busy.yaml"]);
    let url = server.base.clone();
    let first = {
        let url = url.clone();
        std::thread::spawn(move || client().post(&url).body("first").send().unwrap())
    };
    // The output holds the first message: its request is being answered.
    assert_eq!(requests.recv_timeout(PATIENCE).unwrap().text(), "first");
    let refused = client().post(&url).body("second").send().unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let text = refused.text().unwrap();
    assert!(text.contains("max_concurrent_requests"), "{text}");
    release.send(()).unwrap();
    assert_eq!(first.join().unwrap().status(), 200);
    // Its place is free again.
    let again = client().post(&url).body("third").send().unwrap();
    assert_eq!(again.status(), 200);
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        summary(&log),
        "pipeline busy: received 2, processed 2, dropped 0, failed 0"
    );
}

/// Fails until `wafer check` builds pipelines with `Pipeline::check`: a
/// check must not take the address of the pipeline it checks, which may
/// be running.
#[test]
fn wafer_check_binds_no_address() {
    let ws = Workspace::new();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap().to_string();
    ws.write(
        "running.yaml",
        format!("input: {{http_server: {{address: \"{address}\"}}}}\noutput: {{drop: {{}}}}\n"),
    );
    ws.wafer(&["check", "running.yaml"]).code(0);
    ws.write(
        "bad.yaml",
        "input: {http_server: {address: \"no port\"}}\noutput: {drop: {}}\n",
    );
    ws.wafer(&["check", "bad.yaml"])
        .code(1)
        .stdout_has("input.http_server.address")
        .stdout_has("cannot listen on no port");
    drop(busy);
}

/// [`http_receiver`] at `http://ADDRESS/hook`.
fn test_server(statuses: Vec<u16>, gate: Option<Receiver<()>>) -> (String, Receiver<Request>) {
    let (address, requests) = http_receiver(statuses, gate);
    (format!("http://{address}/hook"), requests)
}
