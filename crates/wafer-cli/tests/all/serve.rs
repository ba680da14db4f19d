//! `wafer run`: the binary serving a registry, talked to over real HTTP.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use super::util::{Workspace, header};

/// `wafer run` on a registry; killed if a test fails before [`Server::stop`].
struct Server {
    child: Child,
    base: String,
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
    /// Starts `wafer run reg` and waits for the line that gives the
    /// address it listens on (compiling comes first: the wait is generous).
    fn start(ws: &Workspace) -> Server {
        let mut child = ws.command(&["run", "reg"]).spawn().unwrap();
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
        loop {
            match server.lines.recv_timeout(Duration::from_secs(120)) {
                Ok(line) => {
                    server.log.push_str(&line);
                    server.log.push('\n');
                    if let Some(at) = line.find("Listening on http://") {
                        let rest = &line[at + "Listening on ".len()..];
                        server.base = rest.split_whitespace().next().unwrap().to_string();
                        return server;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("wafer run never listened:\n{}", server.log)
                }
                Err(RecvTimeoutError::Disconnected) => panic!("wafer run ended:\n{}", server.log),
            }
        }
    }

    fn post(&self, path: &str, body: &str) -> (u16, String) {
        let response = reqwest::blocking::Client::new()
            .post(format!("{}{path}", self.base))
            .body(body.to_string())
            .send()
            .unwrap();
        (response.status().as_u16(), response.text().unwrap())
    }

    fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::blocking::get(format!("{}{path}", self.base)).unwrap();
        (response.status().as_u16(), response.text().unwrap())
    }

    /// Ctrl-C, then the exit code and everything it logged.
    fn stop(mut self) -> (Option<i32>, String) {
        let status = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let code = self.child.wait().unwrap().code();
        self.stopped = true;
        let rest: Vec<String> = self.lines.iter().collect();
        let log = std::mem::take(&mut self.log) + &rest.join("\n");
        (code, log)
    }
}

#[cfg(unix)]
#[test]
fn functions_are_served_over_http_and_errors_have_their_status() {
    let ws = Workspace::new();
    let args_hash = ws.copy_guest(wafer_guests::P1_ARGS, "reg/bin/args.wasm");
    let yaml = format!(
        r#"{}  - name: add
    kind: function.wat
    source: '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
    wit: "add: func(a: s32, b: s32) -> s32;"
    method: add
  - name: bin
    kind: fs.directory
    directory: bin
  - name: args
    kind: function.wasm
    fs: bin
    path: args.wasm
    hash: {args_hash}
    abi: wasi-command
  - name: api
    kind: http.service
    addr: 127.0.0.1:0
  - name: add-route
    kind: http.endpoint
    method: POST
    path: /add/{{a}}
    func: add
"#,
        header("h")
    );
    ws.write("reg/_index.yaml", yaml);
    let server = Server::start(&ws);

    assert_eq!(
        server.post("/v1/functions/h:add", "[2, 40]"),
        (200, "42".into())
    );
    assert_eq!(
        server.post("/v1/functions/h/add", "[1, 1]"),
        (200, "2".into())
    );
    assert_eq!(server.post("/add/2?b=40", ""), (200, "42".into()));
    assert_eq!(server.post("/add/2", r#"{"b": 5}"#), (200, "7".into()));
    assert_eq!(
        server.post("/v1/functions/h:args?args=a,b", ""),
        (200, "args\na\nb".into())
    );

    let (status, body) = server.post("/v1/functions/h:nope", "[]");
    assert_eq!(status, 404);
    assert!(body.contains(r#""kind":"unknown_function""#), "{body}");
    let (status, body) = server.post("/v1/functions/h:add", "[1,");
    assert_eq!(status, 400);
    assert!(body.contains("not JSON"), "{body}");
    let (status, body) = server.post("/v1/functions/h:add", r#"["x", 1]"#);
    assert_eq!(status, 400);
    assert!(
        body.contains(r#""kind":"bad_input""#) && body.contains("args[0]"),
        "{body}"
    );
    let (status, body) = server.post("/add/2", "");
    assert_eq!(status, 400);
    assert!(body.contains("no value for the parameter `b`"), "{body}");

    assert_eq!(server.get("/healthz"), (200, "ok\n".into()));
    let (status, metrics) = server.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"wafer_function_calls_total{function="h:add",outcome="ok"} 4"#),
        "{metrics}"
    );
    assert!(metrics.trim_end().ends_with("# EOF"), "{metrics}");

    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("Stopped."), "{log}");
}

/// The README's HTTP example, served as written (on a free port).
#[cfg(unix)]
#[test]
fn the_http_example_serves_add() {
    let ws = Workspace::new();
    let example = super::util::repo_root().join("examples/http");
    let yaml = std::fs::read_to_string(example.join("_index.yaml")).unwrap();
    ws.write(
        "reg/_index.yaml",
        yaml.replace("127.0.0.1:8080", "127.0.0.1:0"),
    );
    std::fs::copy(example.join("add.wat"), ws.path().join("reg/add.wat")).unwrap();
    let server = Server::start(&ws);
    assert_eq!(server.post("/add", "[2, 40]"), (200, "42".into()));
    assert_eq!(
        server.post("/add", r#"{"a": 2, "b": 40}"#),
        (200, "42".into())
    );
    assert_eq!(
        server.post("/v1/functions/demo:add", "[2, 40]"),
        (200, "42".into())
    );
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
}
