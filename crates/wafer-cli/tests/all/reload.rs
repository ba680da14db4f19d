//! Reloading a running `wafer run` (SIGHUP, `--watch`) while requests
//! keep coming: every one is answered, by the old generation or the new,
//! never by the old once the new answered; a broken registry never
//! replaces a working one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use super::receiver::http_receiver;
use super::server::{PATIENCE, Server, wait_until};
use super::util::{Workspace, header};

/// A function answering `n`.
fn answer_wat(n: i32) -> String {
    format!(r#"(module (func (export "answer") (result i32) i32.const {n}))"#)
}

/// The registry: `POST /answer` calls `r:answer` (from `answer.wat`),
/// with `extra` entries after it.
fn registry(extra: &str) -> String {
    format!(
        r#"{}  - name: answer
    kind: function.wat
    source: file://answer.wat
    method: answer
  - name: api
    kind: http.service
    addr: 127.0.0.1:0
  - name: answer-route
    kind: http.endpoint
    method: POST
    path: /answer
    func: answer
    service: api
{extra}"#,
        header("r")
    )
}

/// Clients that each send `POST /answer` one after the other, on a
/// connection of their own, until stopped; every answer is kept, in order.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    clients: Vec<JoinHandle<Vec<(u16, String)>>>,
}

impl Load {
    fn start(base: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let clients = (0..clients)
            .map(|_| {
                let (stop, sent) = (stop.clone(), sent.clone());
                let url = format!("{base}/answer");
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::builder()
                        .timeout(None)
                        .build()
                        .unwrap();
                    let mut answers = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let answer = match client.post(&url).send() {
                            Ok(response) => (
                                response.status().as_u16(),
                                response.text().unwrap_or_default(),
                            ),
                            Err(error) => (0, error.to_string()),
                        };
                        answers.push(answer);
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    answers
                })
            })
            .collect();
        Load {
            stop,
            sent,
            clients,
        }
    }

    /// Waits until `more` requests were answered after this call.
    fn goes_on(&self, more: usize) {
        let from = self.sent.load(Ordering::Relaxed);
        wait_until(
            &format!("{more} more requests"),
            || self.sent.load(Ordering::Relaxed),
            |sent| *sent >= from + more,
        );
    }

    /// Stops the clients: each one's answers, in order.
    fn finish(self) -> Vec<Vec<(u16, String)>> {
        self.stop.store(true, Ordering::Relaxed);
        self.clients
            .into_iter()
            .map(|client| client.join().unwrap())
            .collect()
    }
}

/// Waits until `/readyz` names `generation`.
fn wait_for_generation(server: &Server, generation: u64) {
    let expected = format!("ready\ngeneration {generation}\n");
    wait_until(
        &format!("generation {generation}"),
        || server.get("/readyz"),
        |seen| *seen == (200, expected.clone()),
    );
}

#[cfg(unix)]
#[test]
fn a_reload_under_load_answers_every_request_from_one_generation_or_the_next() {
    let ws = Workspace::new();
    ws.write("reg/answer.wat", answer_wat(1));
    ws.write("reg/_index.yaml", registry(""));
    let mut server = Server::start(&ws);
    let load = Load::start(&server.base, 4);
    load.goes_on(100);

    // A function's module replaced.
    ws.write("reg/answer.wat", answer_wat(2));
    server.hangup();
    server.wait_for_line("Reloaded. generation=2");
    wait_for_generation(&server, 2);
    assert_eq!(server.post("/answer", ""), (200, "2".into()));
    load.goes_on(100);

    // An endpoint added.
    let twice = "  - name: twice\n    kind: http.endpoint\n    method: POST\n    path: /twice\n    func: answer\n";
    ws.write("reg/_index.yaml", registry(twice));
    server.hangup();
    let line = server.wait_for_line("Reloaded. generation=3");
    assert!(line.contains("added=r:twice"), "{line}");
    assert_eq!(server.post("/twice", ""), (200, "2".into()));
    load.goes_on(100);

    // A broken file: refused, the running generation answers on.
    ws.write("reg/_index.yaml", registry(twice) + "  - name: [\n");
    server.hangup();
    server.wait_for_line("_index.yaml");
    server.wait_for_line("Reload refused");
    wait_for_generation(&server, 3);
    assert_eq!(server.post("/twice", ""), (200, "2".into()));
    assert_eq!(
        server.metric("wafer_reloads_total", &[("outcome", "refused")]),
        Some(1.0)
    );
    load.goes_on(100);

    // Fixed, with a new module: it takes over.
    ws.write("reg/answer.wat", answer_wat(3));
    ws.write("reg/_index.yaml", registry(twice));
    server.hangup();
    server.wait_for_line("Reloaded. generation=4");
    assert_eq!(server.post("/answer", ""), (200, "3".into()));
    load.goes_on(100);

    let answers = load.finish();
    for (client, answers) in answers.iter().enumerate() {
        let mut newest = 1;
        for (status, body) in answers {
            assert_eq!(*status, 200, "client {client}: {body}");
            let answer: i32 = body.parse().unwrap();
            // One after the other, a client never goes back to an older
            // generation once a newer one answered it.
            assert!(answer >= newest, "client {client}: {answers:?}");
            newest = answer;
        }
    }
    let seen: std::collections::BTreeSet<&str> = answers
        .iter()
        .flatten()
        .map(|(_, body)| body.as_str())
        .collect();
    assert_eq!(seen, ["1", "2", "3"].into());
    assert_eq!(
        server.metric("wafer_reloads_total", &[("outcome", "applied")]),
        Some(3.0)
    );
    assert_eq!(server.metric("wafer_registry_generation", &[]), Some(4.0));
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
}

#[cfg(unix)]
#[test]
fn watch_reloads_when_a_file_changes_and_keeps_serving_through_a_broken_one() {
    let ws = Workspace::new();
    ws.write("reg/answer.wat", answer_wat(1));
    ws.write("reg/_index.yaml", registry(""));
    let mut server = Server::start_with(&ws, &["run", "--watch", "reg"]);
    assert_eq!(server.post("/answer", ""), (200, "1".into()));

    ws.write("reg/answer.wat", answer_wat(2));
    server.wait_for_line("Reloaded. generation=2");
    assert_eq!(server.post("/answer", ""), (200, "2".into()));

    ws.write("reg/answer.wat", "(module (func");
    let problem = server.wait_for_line("answer.wat");
    assert!(problem.contains("WAT does not parse"), "{problem}");
    server.wait_for_line("Reload refused");
    assert_eq!(server.post("/answer", ""), (200, "2".into()));

    ws.write("reg/answer.wat", answer_wat(3));
    server.wait_for_line("Reloaded. generation=3");
    assert_eq!(server.post("/answer", ""), (200, "3".into()));
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
}

#[cfg(unix)]
#[test]
fn a_service_keeps_its_listener_and_one_moved_or_removed_frees_its_address() {
    let ws = Workspace::new();
    ws.write("reg/answer.wat", answer_wat(1));
    ws.write("reg/_index.yaml", registry(""));
    let mut server = Server::start(&ws);
    let admin = |addr: &str| format!("  - name: admin\n    kind: http.service\n    addr: {addr}\n");

    ws.write("reg/_index.yaml", registry(&admin("127.0.0.1:0")));
    server.hangup();
    let first = listening_on(&mut server, "r:admin");
    server.wait_for_line("Reloaded. generation=2");
    assert_eq!(health(&first), 200);
    // The first service kept its listener: same address, same port.
    assert_eq!(server.post("/answer", ""), (200, "1".into()));

    // Moved to another address: rebound there, the old one freed.
    ws.write("reg/_index.yaml", registry(&admin("127.0.0.2:0")));
    server.hangup();
    let moved = listening_on(&mut server, "r:admin");
    server.wait_for_line("Reloaded. generation=3");
    assert!(moved.starts_with("http://127.0.0.2:"), "{moved}");
    assert_eq!(health(&moved), 200);
    wait_until("the old address to be freed", || refused(&first), |r| *r);

    // Removed: its address freed, the first service answers on.
    ws.write("reg/_index.yaml", registry(""));
    server.hangup();
    server.wait_for_line("Reloaded. generation=4");
    wait_until("the address to be freed", || refused(&moved), |r| *r);
    assert_eq!(server.post("/answer", ""), (200, "1".into()));
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
}

/// The address of the next `Listening on` line of `service`.
fn listening_on(server: &mut Server, service: &str) -> String {
    let line = server.wait_for_line("Listening on http://");
    assert!(line.ends_with(&format!("service={service}")), "{line}");
    let at = line.find("http://").unwrap();
    line[at..].split_whitespace().next().unwrap().to_string()
}

/// `GET /healthz` at `base`: its status.
fn health(base: &str) -> u16 {
    super::server::send("GET", &format!("{base}/healthz"), "").status
}

/// Whether a connection to `base` is refused.
fn refused(base: &str) -> bool {
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    std::net::TcpStream::connect(addr).is_err()
}

/// A pipeline file reading stdin into `out.txt` in order, through the
/// processors `processors` (YAML).
fn lines_pipeline(processors: &str) -> String {
    format!(
        "input:\n  stdin: {{}}\npipeline:\n  threads: 2\n  ordered: true\n  processors: {processors}\noutput:\n  file: {{path: out.txt}}\n"
    )
}

#[cfg(unix)]
#[test]
fn a_pipeline_changed_mid_stream_writes_every_message_once_in_order() {
    use std::io::Write;

    let ws = Workspace::new();
    std::fs::copy(
        super::util::repo_root().join("examples/pipelines/upper.wat"),
        ws.path().join("upper.wat"),
    )
    .unwrap();
    ws.write("pipe.yaml", lines_pipeline("[]"));
    let mut command = ws.command(&["run", "pipe.yaml"]);
    command.stdin(std::process::Stdio::piped());
    let mut server = Server::spawn_until(command, "Running.");
    let mut stdin = server.take_stdin();
    let lines =
        |from: usize, to: usize| -> String { (from..=to).map(|i| format!("m{i}\n")).collect() };
    stdin.write_all(lines(1, 500).as_bytes()).unwrap();
    stdin.flush().unwrap();
    let out = ws.path().join("out.txt");
    let written = || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .count()
    };
    wait_until("the first 500 lines written", written, |n| *n == 500);

    // Its processors change; its input (stdin, which cannot be read
    // again) runs on.
    ws.write(
        "pipe.yaml",
        lines_pipeline("[{wasm: {module_path: upper.wat, function: process}}]"),
    );
    server.hangup();
    server.wait_for_line("Reloaded. generation=2");
    server.wait_for_line("Took the new processors");
    stdin.write_all(lines(501, 1000).as_bytes()).unwrap();
    drop(stdin);
    let (code, log) = server.wait();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("received 1000, processed 1000"), "{log}");
    let expected: Vec<String> = (1..=1000)
        .map(|i| {
            if i <= 500 {
                format!("m{i}")
            } else {
                format!("M{i}")
            }
        })
        .collect();
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().collect::<Vec<_>>(), expected);
}

/// A `generate`-fed pipeline file writing `out.txt` in order through the
/// processors `processors` (YAML), one message `mM` a millisecond until
/// stopped.
fn generated_pipeline(processors: &str) -> String {
    format!(
        "input:\n  generate: {{mapping: 'root = \"mM\"', count: 0, interval: 1ms}}\npipeline:\n  threads: 2\n  ordered: true\n  processors: {processors}\noutput:\n  file: {{path: out.txt}}\n"
    )
}

#[cfg(unix)]
#[test]
fn a_generated_stream_changed_twice_mid_stream_is_written_once_and_in_order() {
    let ws = Workspace::new();
    let upper =
        std::fs::read_to_string(super::util::repo_root().join("examples/pipelines/upper.wat"))
            .unwrap();
    // The same guest, lowering instead: A-Z to a-z.
    let lower = upper
        .replace("(i32.const 97)", "(i32.const 65)")
        .replace("(i32.const 122)", "(i32.const 90)")
        .replace("(i32.sub (local.get $byte)", "(i32.add (local.get $byte)");
    assert_ne!(lower, upper);
    ws.write("case.wat", &upper);
    ws.write("pipe.yaml", generated_pipeline("[]"));
    let mut server = Server::start_until(&ws, &["run", "pipe.yaml"], "Running.");
    let out = ws.path().join("out.txt");
    let written = || std::fs::read_to_string(&out).unwrap_or_default();
    wait_until("messages written as generated", written, |text| {
        text.lines().count() >= 100
    });

    // Its processors change (its input runs on)...
    ws.write(
        "pipe.yaml",
        generated_pipeline("[{wasm: {module_path: case.wat, function: process}}]"),
    );
    server.hangup();
    server.wait_for_line("Reloaded. generation=2");
    wait_until("uppercased messages written", written, |text| {
        text.contains("MM\n")
    });
    // ...then only the module file it loads: the config is the same.
    ws.write("case.wat", &lower);
    server.hangup();
    server.wait_for_line("Reloaded. generation=3");
    wait_until("lowercased messages written", written, |text| {
        text.contains("mm\n")
    });
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(log.matches("Took the new processors").count(), 2, "{log}");

    // Every message generated was written once, and each went through
    // one stage: the runs of equal lines are the three stages, in order.
    let text = written();
    let received = log
        .split("received ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no summary in:\n{log}"));
    assert!(
        log.contains(&format!(
            "received {received}, processed {received}, dropped 0, failed 0"
        )),
        "{log}"
    );
    assert_eq!(text.lines().count(), received);
    let mut runs: Vec<&str> = text.lines().collect();
    runs.dedup();
    assert_eq!(runs, ["mM", "MM", "mm"]);
}

#[cfg(unix)]
#[test]
fn a_reload_that_would_replace_a_stdin_input_is_refused_and_the_pipeline_runs_on() {
    use std::io::Write;

    let ws = Workspace::new();
    let pipeline = |input: &str| {
        format!(
            "input:\n  {input}\npipeline:\n  threads: 1\n  ordered: true\noutput:\n  file: {{path: out.txt}}\n"
        )
    };
    ws.write("pipe.yaml", pipeline("stdin: {}"));
    let mut command = ws.command(&["run", "pipe.yaml"]);
    command.stdin(std::process::Stdio::piped());
    let mut server = Server::spawn_until(command, "Running.");
    let mut stdin = server.take_stdin();
    stdin.write_all(b"a\nb\n").unwrap();
    stdin.flush().unwrap();
    ws.write(
        "pipe.yaml",
        pipeline("stdin: {codec: lines, max_buffer: 1000000}"),
    );
    server.hangup();
    let refusal = server.wait_for_line("a reload cannot replace its input");
    assert!(refusal.contains("pipe.yaml"), "{refusal}");
    assert!(refusal.contains("input"), "{refusal}");
    server.wait_for_line("Reload refused");
    stdin.write_all(b"c\n").unwrap();
    drop(stdin);
    let (code, log) = server.wait();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("received 3, processed 3"), "{log}");
    let written = std::fs::read_to_string(ws.path().join("out.txt")).unwrap();
    assert_eq!(written, "a\nb\nc\n");
}

#[cfg(unix)]
#[test]
fn a_reload_ends_a_fluent_bit_outputs_wait_to_retry_and_the_new_output_takes_over() {
    let ws = Workspace::new();
    // A port nothing listens on: bound, then freed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let (address, requests) = http_receiver(vec![200], None);
    let open = address.split_once(':').unwrap().1;
    // Waits of an hour: only the reload can end one in a test.
    let conf = |port: &str| {
        format!(
            "[SERVICE]\n    scheduler.base 3600\n    scheduler.cap  3600\n\n\
             [INPUT]\n    Name dummy\n    Rate 20\n\n\
             [OUTPUT]\n    Name        http\n    Match       *\n    Port        {port}\n    \
             Format      json_lines\n    Retry_Limit no_limits\n"
        )
    };
    ws.write("fb.conf", conf(&closed));
    let mut server = Server::start_until(&ws, &["run", "fb.conf"], "Running.");
    server.wait_for_line("trying again in");
    ws.write("fb.conf", conf(open));
    server.hangup();
    server.wait_for_line("Reloaded. generation=2");
    let written = requests
        .recv_timeout(PATIENCE)
        .expect("a request to the new output");
    assert!(written.text().contains("dummy"), "{}", written.text());
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("Dropped a batch after a reload replaced the output"),
        "{log}"
    );
    assert!(log.contains("Took the new processors and outputs"), "{log}");
}
