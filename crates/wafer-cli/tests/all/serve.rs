//! `wafer run`: the binary serving a registry, talked to over real HTTP.

use super::server::Server;
use super::util::{ADD_ENTRY, Workspace, header};

#[cfg(unix)]
#[test]
fn functions_are_served_over_http_and_errors_have_their_status() {
    let ws = Workspace::new();
    let args_hash = ws.copy_guest(wafer_guests::P1_ARGS, "reg/bin/args.wasm");
    let yaml = format!(
        r#"{}{ADD_ENTRY}  - name: bin
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
    let samples = super::server::parse_metrics(&metrics);
    let route = |s: &&super::server::Sample| {
        s.name == "wafer_http_requests_total"
            && s.labels.contains(&("route".into(), "/add/{a}".into()))
    };
    assert_eq!(
        samples.iter().filter(route).map(|s| s.value).sum::<f64>(),
        3.0
    );

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

/// `wasi-http` transport: the raw body in, the result as the response's
/// body with a content type by its type; declared on the function (as
/// Wippy does) or on the endpoint.
#[cfg(unix)]
#[test]
fn wasi_http_transport_maps_bodies_and_results() {
    let ws = Workspace::new();
    let hash = ws.copy_guest(wafer_guests::P2_TYPES, "reg/types.wasm");
    let function = |name: &str, method: &str, extra: &str| {
        format!(
            "  - name: {name}\n    kind: function.wasm\n    fs: wasm\n    path: types.wasm\n    hash: {hash}\n    method: types#{method}\n{extra}"
        )
    };
    let endpoint = |name: &str, path: &str, func: &str, extra: &str| {
        format!(
            "  - name: {name}\n    kind: http.endpoint\n    method: POST\n    path: {path}\n    func: {func}\n{extra}"
        )
    };
    let raw = "    transport: wasi-http\n";
    let yaml = [
        header("w"),
        "  - name: wasm\n    kind: fs.directory\n    directory: .\n".into(),
        function("greet", "greet", raw),
        function("reverse", "reverse-bytes", ""),
        function("nothing", "nothing", raw),
        function("env", "env-var", raw),
        function("points", "add-points", ""),
        "  - name: api\n    kind: http.service\n    addr: 127.0.0.1:0\n".into(),
        endpoint("greet-route", "/greet", "greet", ""),
        endpoint("reverse-route", "/reverse", "reverse", raw),
        endpoint("nothing-route", "/nothing", "nothing", ""),
        endpoint("env-route", "/env", "env", ""),
        endpoint("points-route", "/points", "points", raw),
        endpoint(
            "greet-json",
            "/greet.json",
            "greet",
            "    transport: payload\n",
        ),
    ]
    .concat();
    ws.write("reg/_index.yaml", yaml);
    let server = Server::start(&ws);

    let greeted = server.request("POST", "/greet", "Ann");
    assert_eq!(
        (greeted.status, greeted.text().as_str()),
        (200, "hello, Ann")
    );
    assert_eq!(
        greeted.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    // An answer of known length says so, rather than coming chunked.
    assert_eq!(greeted.header("content-length"), Some("10"));
    let reversed = server.request("POST", "/reverse", vec![1u8, 2, 0, 255]);
    assert_eq!(
        (reversed.status, reversed.body.as_slice()),
        (200, &[255u8, 0, 2, 1][..])
    );
    assert_eq!(
        reversed.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(server.request("POST", "/nothing", "ignored").status, 204);
    assert_eq!(
        server.request("POST", "/env", "WAFER_UNSET_VAR").status,
        204
    );
    let not_text = server.request("POST", "/greet", vec![0xffu8, 0xfe]);
    assert_eq!(not_text.status, 400, "{}", not_text.text());
    let unfit = server.request("POST", "/points", "{}");
    assert_eq!(unfit.status, 422, "{}", unfit.text());
    assert!(
        unfit.text().contains("one string or list<u8> argument"),
        "{}",
        unfit.text()
    );
    // The endpoint's own transport wins over the function's.
    assert_eq!(
        server.post("/greet.json", r#"["Bo"]"#),
        (200, "\"hello, Bo\"".into())
    );

    let greet_ok = [("route", "/greet"), ("method", "POST"), ("status", "200")];
    assert_eq!(
        server.metric("wafer_http_requests_total", &greet_ok),
        Some(1.0)
    );
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
}
