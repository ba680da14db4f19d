//! `wafer run` on Fluent Bit's own config files, classic and YAML, with
//! `Tag`/`Match`/`Match_Regex` routing, the way Fluent Bit users run them.

use wafer_guests::{FLUENTBIT_FB_WRITE_FILE, FLUENTBIT_FILTER_ANSWER, FLUENTBIT_FILTER_JSON};

use crate::receiver::{Request, http_receiver};
use crate::server::PATIENCE;
use crate::util::{Workspace, interrupt_when_stdout};

fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.copy_guest(FLUENTBIT_FILTER_JSON, "filter_json.wasm");
    ws.copy_guest(FLUENTBIT_FILTER_ANSWER, "filter_answer.wasm");
    ws
}

/// Two inputs, a filter for one of them, a file output for each and a
/// `null` one for both: in `dir`, `app.log` holds the 5 filtered `app.web`
/// records and `db.log` the 7 `db.main` ones as they came.
const ROUTES_CONF: &str = r#"
[SERVICE]
    Flush     1
    Log_Level info

@SET prefix=app

[INPUT]
    Name             dummy
    Tag              ${prefix}.web
    Dummy            {"message":"web"}
    Samples          5
    Rate             1000
    Fixed_Timestamp  On
    Start_Time_Sec   1700000000
    Start_Time_Nsec  5

[INPUT]
    name   DUMMY
    tag    db.main
    dummy  {"message":"db"}
    samples 7
    rate   1000

[FILTER]
    Name             wasm
    Match            app.*
    WASM_Path        filter_json.wasm
    Function_Name    filter_json
    Accessible_Paths .

[OUTPUT]
    Name   file
    Match  app.*
    Path   out_conf
    File   app.log
    Format plain
    Mkdir  On

[OUTPUT]
    Name        file
    Match_Regex ^db\.
    Path        out_conf
    File        db.log
    Format      plain
    Mkdir       On

[OUTPUT]
    Name  null
    Match *
"#;

/// The same routes in Fluent Bit's YAML, writing to `out_yaml`.
const ROUTES_YAML: &str = r#"
env:
  prefix: app
service:
  flush: 1
pipeline:
  inputs:
    - name: dummy
      tag: ${prefix}.web
      dummy: '{"message":"web"}'
      samples: 5
      rate: 1000
      fixed_timestamp: on
      start_time_sec: 1700000000
      start_time_nsec: 5
    - Name: dummy
      Tag: db.main
      Dummy: '{"message":"db"}'
      Samples: 7
      Rate: 1000
  filters:
    - name: wasm
      match: app.*
      wasm_path: filter_json.wasm
      function_name: filter_json
      accessible_paths: .
  outputs:
    - name: file
      match: app.*
      path: out_yaml
      file: app.log
      format: plain
      mkdir: true
    - name: file
      match_regex: ^db\.
      path: out_yaml
      file: db.log
      format: plain
      mkdir: true
    - name: "null"
      match: "*"
"#;

#[test]
fn both_dialects_route_every_record_by_tag() {
    let ws = workspace();
    ws.write("routes.conf", ROUTES_CONF);
    ws.write("routes.yaml", ROUTES_YAML);
    for (config, dir) in [("routes.conf", "out_conf"), ("routes.yaml", "out_yaml")] {
        let run = ws.wafer(&["run", config]);
        run.code(0);
        run.stderr_has("pipeline dummy.0: received 5, processed 5, dropped 0, failed 0")
            .stderr_has("pipeline dummy.1: received 7, processed 7, dropped 0, failed 0");
        let app = std::fs::read_to_string(ws.path().join(dir).join("app.log")).unwrap();
        let app: Vec<serde_json::Value> = app
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(app.len(), 5, "{config}");
        for record in &app {
            assert_eq!(record["tag"], "app.web");
            assert_eq!(record["message"], "web");
            assert_eq!(record["lang"], "Rust");
            // The time the filter saw: the input's fixed one.
            assert_eq!(record["time"], "1700000000.000000005");
        }
        let db = std::fs::read_to_string(ws.path().join(dir).join("db.log")).unwrap();
        assert_eq!(db, "{\"message\":\"db\"}\n".repeat(7), "{config}");
    }
}

#[test]
fn a_failed_record_is_dropped_and_counted_as_fluent_bit_does() {
    let ws = workspace();
    ws.write(
        "drop.conf",
        r#"
[INPUT]
    Name    stdin
    Tag     in

[FILTER]
    Name          wasm
    Match         *
    WASM_Path     filter_answer.wasm
    Function_Name filter_answer

[OUTPUT]
    Name   stdout
    Match  *
    Format json_lines
    json_date_key false
"#,
    );
    let input = "{\"answer\":\"keep\",\"n\":1}\n{\"answer\":\"trap\"}\n{\"answer\":\"array\"}\n{\"answer\":\"null\"}\n{\"answer\":\"keep\",\"n\":2}\n";
    let run = ws.wafer_with_stdin(&["run", "drop.conf"], input);
    run.prints("{\"answer\":\"keep\",\"n\":1}\n{\"answer\":\"keep\",\"n\":2}");
    run.stderr_has(
        "pipeline stdin.0: received 5, processed 2, dropped 2, failed 2, filtered out 1",
    );
}

#[test]
fn seed_004s_config_runs_as_written() {
    // Seed 004's config, its WASI_Path pointing at a program of ours that
    // prints what it may write: `accessible_paths` is commented out, so
    // Fluent Bit's default `.` applies.
    let ws = Workspace::new();
    ws.copy_guest(FLUENTBIT_FB_WRITE_FILE, "wasi_built_json.wasm");
    ws.write(
        "fluent-bit.conf",
        r#"[INPUT]
    Name exec_wasi
    Tag  exec.wasi.local
    WASI_Path ./wasi_built_json.wasm
    # For security reasons, WASM/WASI program cannot access its outer world
    # without accessible permissions.
    # accessible_paths .,/path/to/fluent-bit

[OUTPUT]
    Name  stdout
    Match *
"#,
    );
    let args = ["run", "fluent-bit.conf"];
    // It runs every second until stopped; stopped once a run printed.
    let run = interrupt_when_stdout(&args, ws.command(&args), "/etc/passwd");
    run.code(0);
    run.stdout_has("] exec.wasi.local: [[")
        .stdout_has(r#"{"wasi_stdout"=>"ok out.txt"}]"#)
        .stdout_has(r#"{"wasi_stdout"=>"denied ../escape.txt"}]"#)
        .stdout_has(r#"{"wasi_stdout"=>"denied /etc/passwd"}]"#);
    run.stderr_has("may read and write .");
    assert!(ws.path().join("out.txt").exists());
}

#[test]
fn an_unsupported_plugin_is_named_with_what_is_supported() {
    let ws = Workspace::new();
    ws.write(
        "tail.conf",
        "[INPUT]\n    Name tail\n    Path /var/log/*.log\n\n[OUTPUT]\n    Name stdout\n    Match *\n",
    );
    ws.wafer(&["run", "tail.conf"])
        .code(2)
        .stderr_has("tail.conf")
        .stderr_has("tail")
        .stderr_has("supported: dummy, exec_wasi, stdin");
    ws.wafer(&["check", "tail.conf"]).code(1).stdout_has("tail");
}

#[test]
fn an_alias_names_the_pipeline_but_not_the_tag_and_any_text_is_read() {
    // Fluent Bit's default tag is the instance's name, `dummy.0`, whatever
    // its alias; text beyond ASCII (here in a comment and a value) is read
    // as it is.
    let ws = Workspace::new();
    ws.write(
        "alias.conf",
        "[INPUT]\n    Name    dummy\n    Alias   web\n    # été, 日本\n    Dummy   {\"message\":\"héllo\"}\n    Samples 2\n    Rate    1000\n\n[OUTPUT]\n    Name          stdout\n    Match         dummy.*\n    Format        json_lines\n    json_date_key false\n",
    );
    let run = ws.wafer(&["run", "alias.conf"]);
    run.prints("{\"message\":\"h\\u00e9llo\"}\n{\"message\":\"h\\u00e9llo\"}");
    run.stderr_has("pipeline web: received 2, processed 2, dropped 0, failed 0");
}

/// A config sending each `dummy` record to the HTTP server at `address`
/// with `Retry_Limit` `limit`; waits between tries of a second
/// (`scheduler.base` and `.cap` 0 leave Fluent Bit's added second).
fn http_output_conf(address: &str, limit: &str) -> String {
    let (host, port) = address.split_once(':').unwrap();
    format!(
        "[SERVICE]\n    scheduler.base 0\n    scheduler.cap  0\n\n\
         [INPUT]\n    Name    dummy\n    Dummy   {{\"n\":1}}\n    Samples 1\n    Rate    1000\n\n\
         [OUTPUT]\n    Name          http\n    Match         *\n    Host          {host}\n    Port          {port}\n    \
         Format        json_lines\n    json_date_key false\n    Retry_Limit   {limit}\n"
    )
}

#[test]
fn a_chunk_is_retried_up_to_retry_limit_then_dropped_and_the_run_goes_on() {
    let ws = Workspace::new();
    let took = |requests: &std::sync::mpsc::Receiver<Request>, n: usize| -> Vec<Request> {
        let taken: Vec<Request> = (0..n)
            .map(|_| requests.recv_timeout(PATIENCE).expect("a request"))
            .collect();
        assert!(requests.try_recv().is_err(), "more than {n} requests");
        taken
    };
    // Refused once, then taken: the same chunk, written.
    let (address, requests) = http_receiver(vec![503, 200], None);
    ws.write("flaky.conf", http_output_conf(&address, "2"));
    let run = ws.wafer(&["run", "flaky.conf"]);
    run.code(0)
        .stderr_has("trying again in 1 s")
        .stderr_has("HTTP 503")
        .stderr_has("pipeline dummy.0: received 1, processed 1, dropped 0, failed 0");
    let tries = took(&requests, 2);
    assert_eq!((tries[0].status, tries[1].status), (503, 200));
    assert_eq!(tries[0].text(), "{\"n\":1}\n");
    assert_eq!(tries[1].text(), tries[0].text());
    // Refused every time: tried once more (Retry_Limit 1), then dropped.
    let (address, requests) = http_receiver(vec![500], None);
    ws.write("down.conf", http_output_conf(&address, "1"));
    let run = ws.wafer(&["run", "down.conf"]);
    run.code(0)
        .stderr_has("dropped after 1 retry")
        .stderr_has("pipeline dummy.0: received 1, processed 0, dropped 1, failed 1");
    took(&requests, 2);
    // A 4xx other than 408 and 429 is never retried (out_http's FLB_ERROR).
    let (address, requests) = http_receiver(vec![400], None);
    ws.write("bad.conf", http_output_conf(&address, "3"));
    let run = ws.wafer(&["run", "bad.conf"]);
    run.code(0)
        .stderr_has("a 4xx is not tried again")
        .stderr_has("pipeline dummy.0: received 1, processed 0, dropped 1, failed 1");
    assert!(!run.stderr.contains("trying again"), "{}", run.stderr);
    took(&requests, 1);
}
