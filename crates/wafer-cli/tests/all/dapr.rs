//! Dapr's binding API served by `wafer run` on a folder of Dapr components,
//! answered as Dapr's sidecar answers it.

use serde_json::json;

use super::server::Server;
use super::util::Workspace;

fn component(name: &str, url: &str) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: bindings.wasm\n  version: v1\n  metadata:\n  - name: url\n    value: {url}\n"
    )
}

/// A components folder with no `http.service`, served on the port
/// `--dapr-http-port` gives (0: one the OS picks, for the test).
fn dapr_workspace() -> (Workspace, Server) {
    let ws = Workspace::new();
    ws.copy_guest(wafer_guests::P1_HELLO, "main.wasm");
    ws.copy_guest(wafer_guests::P1_ECHO, "echo.wasm");
    ws.copy_guest(wafer_guests::P1_EXIT_CODE, "exit.wasm");
    ws.copy_guest(wafer_guests::P1_UNREACHABLE, "trap.wasm");
    ws.write(
        "components/wasm.yaml",
        component("wasm", "file://main.wasm"),
    );
    ws.write(
        "components/echo.yaml",
        component("echo", "file://echo.wasm"),
    );
    ws.write(
        "components/exit.yaml",
        component("exit", "file://exit.wasm"),
    );
    ws.write(
        "components/trap.yaml",
        component("trap", "file://trap.wasm"),
    );
    ws.write(
        "components/gone.yaml",
        component("gone", "file://missing.wasm"),
    );
    let server = Server::start_with(&ws, &["run", "components", "--dapr-http-port", "0"]);
    (ws, server)
}

fn execute(server: &Server, binding: &str, body: serde_json::Value) -> super::server::Response {
    server.request(
        "POST",
        &format!("/v1.0/bindings/{binding}"),
        body.to_string(),
    )
}

#[cfg(unix)]
#[test]
fn a_components_folder_answers_as_dapr_does() {
    let (_ws, server) = dapr_workspace();
    assert!(server.addr().ip().is_loopback());

    // Dapr's `example` program: argv[0] is the module's name, `args` follow.
    let hello = execute(
        &server,
        "wasm",
        json!({"operation": "execute", "metadata": {"args": "salaboy"}}),
    );
    assert_eq!(
        (hello.status, hello.text().as_str()),
        (200, "hello salaboy")
    );
    assert_eq!(hello.header("content-type"), Some("application/json"));
    // PUT is answered too.
    let put = server.request(
        "PUT",
        "/v1.0/bindings/wasm",
        r#"{"operation":"execute","metadata":{"args":"x"}}"#,
    );
    assert_eq!(put.text(), "hello x");

    // stdin is `data` as Go's json.Marshal writes it.
    let cases = [
        (json!("salaboy"), r#""salaboy""#),
        (
            json!({"b": 1.0, "a": "<&>", "c": [1e21, 12345678901234567890u64]}),
            r#"{"a":"\u003c\u0026\u003e","b":1,"c":[1e+21,12345678901234567000]}"#,
        ),
        (json!(null), "null"),
    ];
    for (data, stdin) in cases {
        let echoed = execute(
            &server,
            "echo",
            json!({"operation": "execute", "data": data}),
        );
        assert_eq!((echoed.status, echoed.text().as_str()), (200, stdin));
    }
    let missing = execute(&server, "echo", json!({"operation": "execute"}));
    assert_eq!(missing.text(), "null");

    // Failures keep Dapr's codes and wording; stdout is discarded.
    let failures = [
        (
            "exit",
            json!({"operation": "execute", "metadata": {"args": "3"}}),
            "error invoking output binding exit: module closed with exit_code(3)",
        ),
        (
            "nope",
            json!({"operation": "execute"}),
            "error invoking output binding nope: couldn't find output binding nope",
        ),
        (
            "echo",
            json!({"data": 1}),
            "error invoking output binding echo: operation field is missing from request",
        ),
        (
            "echo",
            json!({"operation": "get"}),
            "error invoking output binding echo: binding echo does not support operation get. supported operations:execute",
        ),
    ];
    for (binding, body, message) in failures {
        let failed = execute(&server, binding, body);
        assert_eq!(failed.status, 500, "{}", failed.text());
        assert_eq!(
            failed.json(),
            json!({"errorCode": "ERR_INVOKE_OUTPUT_BINDING", "message": message})
        );
    }
    for binding in ["trap", "gone"] {
        let failed = execute(&server, binding, json!({"operation": "execute"}));
        assert_eq!(failed.status, 500, "{}", failed.text());
        let body = failed.json();
        assert_eq!(body["errorCode"], "ERR_INVOKE_OUTPUT_BINDING");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("error invoking output binding {binding}: ")),
            "{message}"
        );
    }
    for malformed in ["", "{\"operation\":", "[1]", r#"{"metadata": {"args": 1}}"#] {
        let failed = server.request("POST", "/v1.0/bindings/echo", malformed);
        assert_eq!(failed.status, 400, "{malformed}: {}", failed.text());
        let body = failed.json();
        assert_eq!(body["errorCode"], "ERR_MALFORMED_REQUEST");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("failed deserializing HTTP body: "),
            "{body}"
        );
    }
    assert_eq!(server.request("GET", "/v1.0/healthz", "").status, 204);

    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("service=dapr"), "{log}");
    assert!(
        log.contains("entry gone") || log.contains("missing.wasm"),
        "the refused component is logged:\n{log}"
    );
}
