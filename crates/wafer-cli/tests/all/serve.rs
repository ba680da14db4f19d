//! `wafer run`: the binary serving a registry, talked to over real HTTP.

use std::io::{BufRead, BufReader, Read};
use std::process::Child;

use super::util::{Workspace, header};

/// `wafer run` on a registry, stopped (Ctrl-C) when dropped.
struct Server {
    child: Child,
    base: String,
    log: std::sync::mpsc::Receiver<String>,
}

impl Server {
    /// Starts `wafer run reg` and waits for the line that gives the
    /// address it listens on.
    fn start(ws: &Workspace) -> Server {
        let mut child = ws.command(&["run", "reg"]).spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let base = loop {
            let mut line = String::new();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "wafer run ended:\n{seen}"
            );
            seen.push_str(&line);
            if let Some(at) = line.find("Listening on http://") {
                let rest = &line[at + "Listening on ".len()..];
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        let (send, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = stderr.read_to_string(&mut rest);
            let _ = send.send(seen + &rest);
        });
        Server { child, base, log }
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
        (code, self.log.recv().unwrap())
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
