//! `wafer run` on Benthos-shaped pipelines writing through Fluent Bit's
//! outputs (`fluentbit_stdout`, `fluentbit_file`, `fluentbit_http`) and
//! Benthos' `broker`, fed by `generate` (records without a tag: the tag
//! is empty, and out_file names such a file `_`).

use std::sync::mpsc::Receiver;

use crate::pipelines::summary_line as summary;
use crate::receiver::{Request, http_receiver};
use crate::server::PATIENCE;
use crate::util::{Run, Workspace};

/// The record every pipeline here generates.
const RECORD: &str = r#"{"message":"hi","n":1.5,"ok":true}"#;

/// A pipeline generating `count` records (at once, in batches of 512)
/// into `output` (YAML of one output).
fn pipeline(count: usize, output: &str) -> String {
    format!(
        "input:\n  generate:\n    count: {count}\n    interval: 0s\n    mapping: 'root = {RECORD}'\npipeline:\n  threads: 1\noutput:\n{output}"
    )
}

/// Runs the pipeline file `name` holding `yaml`; asserts it succeeded.
fn run(ws: &Workspace, name: &str, yaml: &str) -> Run {
    ws.write(name, yaml);
    let run = ws.wafer(&["run", name]);
    run.code(0);
    run
}

/// `text` with the part between `before` and the next `after` (the end
/// when empty) cut out:
/// that part, and the text with `T` in its place.
fn cut(text: &str, before: &str, after: &str) -> (String, String) {
    let start = text
        .find(before)
        .unwrap_or_else(|| panic!("no {before:?} in {text:?}"))
        + before.len();
    let len = match after {
        "" => text.len() - start,
        after => text[start..]
            .find(after)
            .unwrap_or_else(|| panic!("no {after:?} after {before:?} in {text:?}")),
    };
    let stamp = text[start..start + len].to_string();
    let rest = format!("{}T{}", &text[..start], &text[start + len..]);
    (stamp, rest)
}

/// Whether `stamp` is `sec.nsec` with nine digits of nanoseconds.
fn is_sec_nsec(stamp: &str) -> bool {
    let (sec, nsec) = stamp.split_once('.').unwrap_or(("", ""));
    !sec.is_empty()
        && sec.bytes().all(|b| b.is_ascii_digit())
        && nsec.len() == 9
        && nsec.bytes().all(|b| b.is_ascii_digit())
}

#[test]
fn fluentbit_stdout_prints_each_format_as_fluent_bit_does() {
    let ws = Workspace::new();
    // msgpack, the default: numbered in each batch (512, then 88).
    let printed = run(
        &ws,
        "printed.yaml",
        &pipeline(600, "  fluentbit_stdout: {}\n"),
    );
    let lines: Vec<&str> = printed.stdout.lines().collect();
    assert_eq!(lines.len(), 600, "{}", printed.stdout);
    for (i, line) in lines.iter().enumerate() {
        let (stamp, rest) = cut(line, "[[", ", {}]");
        assert!(is_sec_nsec(&stamp), "{line}");
        let n = if i < 512 { i } else { i - 512 };
        assert_eq!(
            rest,
            format!(r#"[{n}] : [[T, {{}}], {{"message"=>"hi", "n"=>1.500000, "ok"=>true}}]"#)
        );
    }
    assert_eq!(
        summary(&printed.stderr),
        "pipeline printed: received 600, processed 600, dropped 0, failed 0"
    );
    // json: the batch as one array, without a date key here.
    run(
        &ws,
        "array.yaml",
        &pipeline(
            3,
            "  fluentbit_stdout: {format: json, json_date_key: false}\n",
        ),
    )
    .prints(&format!("[{RECORD},{RECORD},{RECORD}]"));
    // json_stream: one object after another, then a newline.
    let stream = run(
        &ws,
        "stream.yaml",
        &pipeline(
            2,
            "  fluentbit_stdout: {format: json_stream, json_date_key: 'Off'}\n",
        ),
    );
    assert_eq!(stream.stdout, format!("{RECORD}{RECORD}\n"));
    // json_lines, with the date key first: iso8601 and double.
    let lines = run(
        &ws,
        "lines.yaml",
        &pipeline(
            2,
            "  fluentbit_stdout: {format: json_lines, json_date_key: time, json_date_format: iso8601}\n",
        ),
    );
    for line in lines.stdout.lines() {
        let (stamp, rest) = cut(line, r#"{"time":""#, r#"""#);
        assert_eq!(rest, r#"{"time":"T","message":"hi","n":1.5,"ok":true}"#);
        // 2026-12-02T16:03:15.123456Z
        assert_eq!(stamp.len(), 27, "{stamp}");
        assert!(
            stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "{stamp}"
        );
    }
    assert_eq!(lines.stdout.lines().count(), 2, "{}", lines.stdout);
    let doubles = run(
        &ws,
        "doubles.yaml",
        &pipeline(1, "  fluentbit_stdout: {format: json}\n"),
    );
    let (stamp, rest) = cut(&doubles.stdout, r#"[{"date":"#, ",");
    assert_eq!(
        rest,
        "[{\"date\":T,\"message\":\"hi\",\"n\":1.5,\"ok\":true}]\n"
    );
    let (sec, fraction) = stamp.split_once('.').unwrap_or((&stamp, "0"));
    assert!(sec.len() >= 10 && fraction.len() <= 6, "{stamp}");
}

#[test]
fn records_of_a_dummy_input_print_exactly_as_fluent_bit_prints_them() {
    let ws = Workspace::new();
    // Fluent Bit's dummy input, its time fixed: one tick of three copies,
    // a batch of three records tagged `dummy.0`.
    let input = r#"input:
  dummy:
    tag: dummy.0
    dummy: '{"message":"dummy","level":3,"ratio":0.25,"tags":["a","b"],"ctx":{"ok":true,"none":null}}'
    copies: 3
    samples: 1
    flush_on_startup: true
    start_time_sec: 1700000000
    start_time_nsec: 123456789
    fixed_timestamp: true
"#;
    let outputs = r#"output:
  broker:
    outputs:
      - fluentbit_stdout: {}
      - fluentbit_file: {path: logs, mkdir: true}
      - fluentbit_file: {path: logs, mkdir: true, file: dates.json, format: plain}
      - fluentbit_file: {path: logs, mkdir: true, file: records.csv, format: csv}
"#;
    let printed = run(&ws, "dummy.yaml", &format!("{input}{outputs}"));
    let body = r#"{"message"=>"dummy", "level"=>3, "ratio"=>0.250000, "tags"=>["a", "b"], "ctx"=>{"ok"=>true, "none"=>nil}}"#;
    printed.prints(
        &(0..3)
            .map(|i| format!("[{i}] dummy.0: [[1700000000.123456789, {{}}], {body}]"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let read = |name: &str| std::fs::read_to_string(ws.path().join("logs").join(name)).unwrap();
    let json = r#"{"message":"dummy","level":3,"ratio":0.25,"tags":["a","b"],"ctx":{"ok":true,"none":null}}"#;
    // out_file names the file after the tag.
    assert_eq!(
        read("dummy.0"),
        format!("dummy.0: [1700000000.123456789, {json}]\n").repeat(3)
    );
    assert_eq!(read("dates.json"), format!("{json}\n").repeat(3));
    assert_eq!(
        read("records.csv"),
        "1700000000.123456789,\"dummy\",3,0.250000,[\"a\", \"b\"],{\"ok\"=>true, \"none\"=>nil}\n"
            .repeat(3)
    );
    // The JSON formats with each date format.
    for (format, date) in [
        ("double", "1700000000.123457"),
        ("epoch", "1700000000"),
        ("epoch_ms", "1700000000123"),
        ("iso8601", "\"2023-11-14T22:13:20.123456Z\""),
        ("java_sql_timestamp", "\"2023-11-14 22:13:20.123456\""),
    ] {
        let yaml = format!(
            "{input}output:\n  fluentbit_stdout: {{format: json_lines, json_date_format: {format}}}\n"
        );
        let line = format!("{{\"date\":{date},{}\n", &json[1..]);
        assert_eq!(
            run(&ws, "dates.yaml", &yaml).stdout,
            line.repeat(3),
            "{format}"
        );
    }
}

#[test]
fn fluentbit_file_appends_in_out_file_s_formats() {
    let ws = Workspace::new();
    // One pipeline fans out to every format; the folder does not exist
    // (each output creates it: they write at the same time).
    let outputs = r#"  broker:
    outputs:
      - fluentbit_file: {path: out/deep, mkdir: true}
      - fluentbit_file: {path: out/deep, mkdir: true, file: plain.txt, format: plain}
      - fluentbit_file: {path: out/deep, mkdir: true, file: data.csv, format: csv, csv_column_names: true}
      - fluentbit_file: {path: out/deep, mkdir: true, file: tabs.csv, format: csv, delimiter: tab}
      - fluentbit_file: {path: out/deep, mkdir: true, file: data.ltsv, format: ltsv}
      - fluentbit_file: {path: out/deep, mkdir: true, file: said.txt, format: template, template: '{message} is {n} at {time}'}
"#;
    let yaml = pipeline(2, outputs);
    ws.write("files.yaml", &yaml);
    // Checking creates nothing.
    ws.wafer(&["check", "files.yaml"]).code(0);
    assert!(!ws.path().join("out").exists());
    run(&ws, "files.yaml", &yaml);
    // Run twice: each file is appended to, the csv header written once.
    run(&ws, "files.yaml", &yaml);
    let read = |name: &str| std::fs::read_to_string(ws.path().join("out/deep").join(name)).unwrap();
    let tagged = read("_");
    assert_eq!(tagged.lines().count(), 4, "{tagged}");
    for line in tagged.lines() {
        let (stamp, rest) = cut(line, ": [", ", ");
        assert!(is_sec_nsec(&stamp), "{line}");
        assert_eq!(rest, format!(": [T, {RECORD}]"));
    }
    assert_eq!(read("plain.txt"), format!("{RECORD}\n").repeat(4));
    let csv = read("data.csv");
    let mut csv_lines = csv.lines();
    assert_eq!(csv_lines.next(), Some(r#"timestamp,"message","n","ok""#));
    for line in csv_lines {
        let (stamp, rest) = cut(line, "", ",");
        assert!(is_sec_nsec(&stamp), "{line}");
        assert_eq!(rest, r#"T,"hi",1.500000,true"#);
    }
    assert_eq!(csv.lines().count(), 5, "{csv}");
    let tabs = read("tabs.csv");
    assert_eq!(tabs.lines().count(), 4, "{tabs}");
    assert!(
        tabs.lines()
            .all(|l| l.ends_with("\t\"hi\"\t1.500000\ttrue")),
        "{tabs}"
    );
    let ltsv = read("data.ltsv");
    assert_eq!(ltsv.lines().count(), 4, "{ltsv}");
    for line in ltsv.lines() {
        let (stamp, rest) = cut(line, "\"time\":", "\t");
        assert_eq!(
            stamp.split_once('.').map(|(_, f)| f.len()),
            Some(6),
            "{line}"
        );
        assert_eq!(
            rest,
            "\"time\":T\t\"message\":\"hi\"\t\"n\":1.500000\t\"ok\":true"
        );
    }
    let said = read("said.txt");
    assert_eq!(said.lines().count(), 4, "{said}");
    for line in said.lines() {
        let (stamp, rest) = cut(line, " at ", "");
        assert!(stamp.contains('.'), "{line}");
        assert_eq!(rest, "hi is 1.500000 at T");
    }
}

#[test]
fn a_broker_fans_every_batch_out_to_each_output() {
    let ws = Workspace::new();
    // Two batches (512 and 188), each to stdout and to a file.
    let outputs = r#"  broker:
    pattern: fan_out
    outputs:
      - fluentbit_stdout: {format: json_lines, json_date_key: false}
      - label: copy
        fluentbit_file: {file: copy.txt, format: plain}
"#;
    let fanned = run(&ws, "fanned.yaml", &pipeline(700, outputs));
    assert_eq!(fanned.stdout, format!("{RECORD}\n").repeat(700));
    assert_eq!(
        std::fs::read_to_string(ws.path().join("copy.txt")).unwrap(),
        format!("{RECORD}\n").repeat(700)
    );
    assert_eq!(
        summary(&fanned.stderr),
        "pipeline fanned: received 700, processed 700, dropped 0, failed 0"
    );
}

#[test]
fn mistakes_are_named_by_their_field() {
    let ws = Workspace::new();
    let cases = [
        (
            "  fluentbit_stdout: {format: otlp_json}\n",
            "output.fluentbit_stdout.format",
            "`otlp_json` is not a format wafer writes",
        ),
        (
            "  fluentbit_stdout: {json_date_format: unix}\n",
            "output.fluentbit_stdout.json_date_format",
            "`unix` is not a date format",
        ),
        (
            "  fluentbit_file: {file: '$key'}\n",
            "output.fluentbit_file.file",
            "record accessors",
        ),
        (
            "  fluentbit_http: {format: gelf}\n",
            "output.fluentbit_http.format",
            "`gelf` is not a format",
        ),
        (
            "  fluentbit_http: {header: NoValue}\n",
            "output.fluentbit_http.header",
            "`NoValue` is not `Name value`",
        ),
        (
            "  broker: {pattern: round_robin, outputs: [{drop: {}}]}\n",
            "output.broker.pattern",
            "fan_out only, not `round_robin`",
        ),
        (
            "  broker: {outputs: [{drop: {}}, {fluentbit_file: {format: xml}}]}\n",
            "output.broker.outputs[1].fluentbit_file.format",
            "`xml` is not an out_file format",
        ),
        (
            "  broker: {outputs: [{stdout: {}, processors: []}]}\n",
            "output.broker.outputs[0].processors",
            "processors",
        ),
    ];
    for (i, (output, field, message)) in cases.into_iter().enumerate() {
        let name = format!("bad{i}.yaml");
        ws.write(&name, pipeline(1, output));
        ws.wafer(&["run", &name])
            .code(2)
            .stderr_has(field)
            .stderr_has(message);
    }
}

/// The one request a run sent.
fn only_request(requests: &Receiver<Request>) -> Request {
    let request = requests.recv_timeout(PATIENCE).expect("a request");
    assert!(requests.try_recv().is_err(), "more than one request");
    request
}

#[test]
fn fluentbit_http_sends_a_batch_per_request_in_each_format() {
    let ws = Workspace::new();
    let (address, requests) = http_receiver(vec![200], None);
    let (host, port) = address.split_once(':').unwrap();
    let http = |fields: &str| {
        format!("  fluentbit_http: {{host: {host}, port: {port}, uri: logs, {fields}}}\n")
    };
    // json, the default: one array; basic authentication, extra headers.
    run(
        &ws,
        "json.yaml",
        &pipeline(
            5,
            &http(
                "json_date_key: false, http_user: fluent, http_passwd: bit, header: ['X-Team logs', 'X-Note a, b']",
            ),
        ),
    );
    let json = only_request(&requests);
    assert_eq!(json.line, "POST /logs HTTP/1.1");
    assert_eq!(json.header("content-type"), Some("application/json"));
    assert_eq!(json.header("user-agent"), Some("Fluent-Bit"));
    // base64("fluent:bit")
    assert_eq!(json.header("authorization"), Some("Basic Zmx1ZW50OmJpdA=="));
    assert_eq!(json.header("x-team"), Some("logs"));
    assert_eq!(json.header("x-note"), Some("a, b"));
    let records = [RECORD; 5].join(",");
    assert_eq!(
        String::from_utf8(json.body).unwrap(),
        format!("[{records}]")
    );
    // json_lines: x-ndjson, a date key on each line.
    run(
        &ws,
        "lines.yaml",
        &pipeline(5, &http("format: json_lines, json_date_format: epoch")),
    );
    let lines = only_request(&requests);
    assert_eq!(lines.header("content-type"), Some("application/x-ndjson"));
    let body = String::from_utf8(lines.body).unwrap();
    assert_eq!(body.lines().count(), 5, "{body}");
    for line in body.lines() {
        let (stamp, rest) = cut(line, r#"{"date":"#, ",");
        assert!(stamp.bytes().all(|b| b.is_ascii_digit()), "{line}");
        assert_eq!(rest, r#"{"date":T,"message":"hi","n":1.5,"ok":true}"#);
    }
    // msgpack: the chunk's records, [[EventTime, {}], {record}] each.
    run(&ws, "packed.yaml", &pipeline(5, &http("format: msgpack")));
    let packed = only_request(&requests);
    assert_eq!(packed.header("content-type"), Some("application/msgpack"));
    let mut record = b"\x83\xa7message\xa2hi\xa1n\xcb".to_vec();
    record.extend_from_slice(&1.5f64.to_be_bytes());
    record.extend_from_slice(b"\xa2ok\xc3");
    let size = 13 + record.len();
    assert_eq!(packed.body.len(), 5 * size);
    for event in packed.body.chunks(size) {
        assert_eq!(&event[..4], b"\x92\x92\xd7\x00", "{event:x?}");
        assert_eq!(event[12], 0x80, "{event:x?}");
        assert_eq!(&event[13..], &record[..]);
    }
}

/// Three records sent by `fluentbit_http` (with `fields` more) to a
/// server that answers 500 to everything: the run, after the one request
/// it made.
fn refused(fields: &str) -> Run {
    let ws = Workspace::new();
    let (address, requests) = http_receiver(vec![500], None);
    let (host, port) = address.split_once(':').unwrap();
    ws.write(
        "refused.yaml",
        pipeline(
            3,
            &format!("  label: sink\n  fluentbit_http: {{host: {host}, port: {port}{fields}}}\n"),
        ),
    );
    let run = ws.wafer(&["run", "refused.yaml"]);
    assert_eq!(only_request(&requests).line, "POST / HTTP/1.1");
    run.stderr_has("HTTP 500 Internal Server Error: refused");
    run
}

#[test]
fn without_retry_limit_a_refusing_server_fails_the_run_and_nothing_is_acknowledged() {
    let run = refused("");
    run.code(1).stderr_has("output sink");
    assert_eq!(
        summary(&run.stderr),
        "pipeline refused: received 3, processed 0, dropped 0, failed 0"
    );
}

#[test]
fn a_refused_batch_is_dropped_after_its_retries_and_the_run_goes_on() {
    let run = refused(", retry_limit: no_retries");
    run.code(0)
        .stderr_has("output=sink")
        .stderr_has("dropped after 0 retries");
    assert_eq!(
        summary(&run.stderr),
        "pipeline refused: received 3, processed 0, dropped 3, failed 3"
    );
}

#[test]
fn a_file_that_cannot_be_opened_drops_its_records_and_the_run_goes_on() {
    let ws = Workspace::new();
    // The folder is a file: out_file's FLB_ERROR, never retried.
    ws.write("not-a-folder", "");
    ws.write(
        "files.yaml",
        pipeline(
            2,
            "  fluentbit_file: {path: not-a-folder, file: records, retry_limit: 3, scheduler_base: 0, scheduler_cap: 0}\n",
        ),
    );
    let run = ws.wafer(&["run", "files.yaml"]);
    run.code(0).stderr_has("not-a-folder");
    assert!(!run.stderr.contains("trying again"), "{}", run.stderr);
    assert_eq!(
        summary(&run.stderr),
        "pipeline files: received 2, processed 0, dropped 2, failed 2"
    );
}
