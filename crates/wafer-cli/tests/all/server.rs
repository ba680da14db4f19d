//! A `wafer run` process for tests: started on a free port, talked to over
//! real HTTP, its log kept, killed if a test fails before [`Server::stop`].

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::util::Workspace;

/// How long anything a test waits for may take: generous, since CI shares
/// two cores with other work.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Looks at `observe` every few milliseconds until what it sees is
/// `done`, for up to [`PATIENCE`]: a wait for a state, never for a time.
/// Returns what it saw last; panics, naming `what` and that, when the state
/// never comes.
pub fn wait_until<T: std::fmt::Debug>(
    what: &str,
    mut observe: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let seen = observe();
        if done(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "waited in vain for {what}: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    lines: Receiver<String>,
    log: String,
    stopped: bool,
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Server {
    /// `wafer run reg`.
    pub fn start(ws: &Workspace) -> Server {
        Server::start_with(ws, &["run", "reg"])
    }

    /// `wafer ARGS`, once it logs the address it listens on (compiling
    /// comes first: the wait is generous).
    pub fn start_with(ws: &Workspace, args: &[&str]) -> Server {
        let mut server = Server::start_until(ws, args, "Listening on http://");
        let line = server.log.lines().last().unwrap().to_string();
        let at = line.find("Listening on ").unwrap() + "Listening on ".len();
        server.base = line[at..].split_whitespace().next().unwrap().to_string();
        server
    }

    /// `wafer ARGS`, once it logs a line holding `ready`; `base` is empty.
    pub fn start_until(ws: &Workspace, args: &[&str], ready: &str) -> Server {
        Server::spawn_until(ws.command(args), ready)
    }

    /// `command` (a `wafer` command of [`Workspace::command`]), once it
    /// logs a line holding `ready`.
    pub fn spawn_until(mut command: Command, ready: &str) -> Server {
        let mut child = command.spawn().unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            base: String::new(),
            lines,
            log: String::new(),
            stopped: false,
        };
        server.wait_for_line(ready);
        server
    }

    /// The next log line holding `text` (lines before it are kept in the
    /// log).
    pub fn wait_for_line(&mut self, text: &str) -> String {
        loop {
            match self.lines.recv_timeout(PATIENCE) {
                Ok(line) => {
                    self.log.push_str(&line);
                    self.log.push('\n');
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("wafer never logged {text:?}:\n{}", self.log)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("wafer ended before logging {text:?}:\n{}", self.log)
                }
            }
        }
    }

    /// Its stdin (once; the command must have piped it).
    pub fn take_stdin(&mut self) -> std::process::ChildStdin {
        self.child
            .stdin
            .take()
            .expect("stdin piped, and taken once")
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.base.trim_start_matches("http://").parse().unwrap()
    }

    /// The base URL of service `name`, from its `Listening on` line.
    pub fn base_of(&mut self, name: &str) -> String {
        let tag = format!("service={name}");
        let line = match self
            .log
            .lines()
            .find(|line| line.contains("Listening on") && line.ends_with(&tag))
        {
            Some(line) => line.to_string(),
            None => self.wait_for_line(&tag),
        };
        let at = line.find("http://").unwrap();
        line[at..].split_whitespace().next().unwrap().to_string()
    }

    /// A request to `path` of the first service.
    pub fn request(&self, method: &str, path: &str, body: impl Into<Vec<u8>>) -> Response {
        send(method, &format!("{}{path}", self.base), body)
    }

    /// `POST path` with `body`: the status and the body.
    pub fn post(&self, path: &str, body: &str) -> (u16, String) {
        let response = self.request("POST", path, body);
        (response.status, response.text())
    }

    /// `GET path`: the status and the body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let response = self.request("GET", path, "");
        (response.status, response.text())
    }

    /// The value of the sample `name{labels}` in `/metrics` (labels as
    /// `key=value` pairs, all of which must match), read with
    /// [`parse_metrics`]; `None` when there is no such sample.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let (status, text) = self.get("/metrics");
        assert_eq!(status, 200, "{text}");
        parse_metrics(&text)
            .into_iter()
            .find(|sample| {
                sample.name == name
                    && labels.iter().all(|(k, v)| {
                        sample
                            .labels
                            .iter()
                            .any(|(key, value)| key == k && value == v)
                    })
            })
            .map(|sample| sample.value)
    }

    /// Waits until the sample `name{labels}` reads `value`.
    pub fn wait_for_metric(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        wait_until(
            &format!("{name}{labels:?} to reach {value}"),
            || self.metric(name, labels),
            |seen| *seen == Some(value),
        );
    }

    /// Kills the process at once (`kill -9`, as a crash would).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stopped = true;
    }

    /// Ctrl-C, then the exit code and everything it logged.
    pub fn stop(self) -> (Option<i32>, String) {
        self.interrupt();
        self.wait()
    }

    /// Sends Ctrl-C.
    pub fn interrupt(&self) {
        self.signal("-INT");
    }

    /// Sends SIGHUP: reload.
    pub fn hangup(&self) {
        self.signal("-HUP");
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits, for up to [`PATIENCE`], for the process to end: its exit
    /// code and everything it logged.
    pub fn wait(self) -> (Option<i32>, String) {
        self.wait_within(PATIENCE)
    }

    /// Waits, for up to `limit`, for the process to end: its exit code
    /// and everything it logged. Kills it and panics with its log when it
    /// does not end in time: a hang fails the test instead of blocking.
    pub fn wait_within(mut self, limit: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.stopped = true;
                let rest: Vec<String> = self.lines.iter().collect();
                panic!(
                    "wafer did not end within {limit:?}:\n{}{}",
                    self.log,
                    rest.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.stopped = true;
        let rest: Vec<String> = self.lines.iter().collect();
        let log = std::mem::take(&mut self.log) + &rest.join("\n");
        (status.code(), log)
    }
}

/// A request to `url`, with no time limit of the client's own.
pub fn send(method: &str, url: &str, body: impl Into<Vec<u8>>) -> Response {
    let response = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .unwrap()
        .request(method.parse().unwrap(), url)
        .body(body.into())
        .send()
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    Response::read(response)
}

/// A response read whole.
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    fn read(response: reqwest::blocking::Response) -> Response {
        Response {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.bytes().unwrap().to_vec(),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One sample of an exposition.
#[derive(Debug)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// `/metrics` read strictly as the OpenMetrics text format: every line is
/// a `# HELP`, `# TYPE` or `# UNIT` line naming a metric, or a sample
/// `name{label="value",...} value [timestamp]` with its label values
/// unescaped (`\\`, `\"`, `\n`); the last line is `# EOF`. (The parsers on
/// crates.io read too little of it: `prometheus-parse` stops a label value
/// at its first `}`, `openmetrics-parser` refuses the `# UNIT` of a
/// histogram.)
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let body = text
        .strip_suffix("# EOF\n")
        .unwrap_or_else(|| panic!("no final # EOF:\n{text}"));
    let mut samples = Vec::new();
    for line in body.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let (kind, name) = (words.next(), words.next());
            assert!(
                matches!(kind, Some("HELP" | "TYPE" | "UNIT"))
                    && name.is_some_and(is_metric_name)
                    && (kind == Some("HELP") || words.next().is_some()),
                "not a metadata line: {line:?}"
            );
            continue;
        }
        samples.push(parse_sample(line).unwrap_or_else(|| panic!("not a sample: {line:?}")));
    }
    samples
}

fn is_metric_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = inner.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = inner.find('=')?;
            let key = &inner[..eq];
            if !is_metric_name(key) {
                return None;
            }
            let mut chars = inner[eq + 1..].strip_prefix('"')?.char_indices();
            let mut value = String::new();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        _ => return None,
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.push((key.to_string(), value));
            inner = &inner[eq + 1..][1 + end + 1..];
            inner = inner.strip_prefix(',').unwrap_or(inner);
        }
    }
    let mut fields = rest.strip_prefix(' ')?.split(' ');
    let value = fields.next()?.parse::<f64>().ok()?;
    if let Some(timestamp) = fields.next() {
        timestamp.parse::<f64>().ok()?;
    }
    if fields.next().is_some() {
        return None;
    }
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}
