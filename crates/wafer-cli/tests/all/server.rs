//! A `wafer run` process for tests: started on a free port, talked to over
//! real HTTP, its log kept, killed if a test fails before [`Server::stop`].

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Child;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::util::Workspace;

/// How long anything a test waits for may take: generous, since CI shares
/// two cores with other work.
pub const PATIENCE: Duration = Duration::from_secs(120);

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
        let mut child = ws.command(args).spawn().unwrap();
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
        let line = server.wait_for_line("Listening on http://");
        let at = line.find("Listening on ").unwrap() + "Listening on ".len();
        server.base = line[at..].split_whitespace().next().unwrap().to_string();
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
    /// `key=value` pairs, all of which must match), parsed with a
    /// Prometheus text parser; `None` when there is no such sample.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let (status, text) = self.get("/metrics");
        assert_eq!(status, 200, "{text}");
        let scrape = parse_metrics(&text);
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => panic!("{name} is not a single value"),
            })
    }

    /// Waits until the sample `name{labels}` reads `value`.
    pub fn wait_for_metric(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        let deadline = Instant::now() + PATIENCE;
        while self.metric(name, labels) != Some(value) {
            assert!(
                Instant::now() < deadline,
                "{name}{labels:?} never reached {value}: {:?}",
                self.metric(name, labels)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Ctrl-C, then the exit code and everything it logged.
    pub fn stop(self) -> (Option<i32>, String) {
        self.interrupt();
        self.wait()
    }

    /// Sends Ctrl-C.
    pub fn interrupt(&self) {
        let status = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to end: its exit code and everything it logged.
    pub fn wait(mut self) -> (Option<i32>, String) {
        let code = self.child.wait().unwrap().code();
        self.stopped = true;
        let rest: Vec<String> = self.lines.iter().collect();
        let log = std::mem::take(&mut self.log) + &rest.join("\n");
        (code, log)
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

/// `/metrics` parsed with a Prometheus text parser: every line that is not
/// a comment must be a sample it reads, and it must end in `# EOF`.
pub fn parse_metrics(text: &str) -> prometheus_parse::Scrape {
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        assert!(
            matches!(
                prometheus_parse::LineInfo::parse(line),
                prometheus_parse::LineInfo::Sample { .. }
            ),
            "not a sample: {line:?}"
        );
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
    let lines = text.lines().map(|line| Ok(line.to_string()));
    prometheus_parse::Scrape::parse(lines).unwrap()
}
