//! The reader and translator on config files written to a temporary
//! folder, both dialects; the components themselves are not built here.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Translation, is_fluentbit_file, load};
use crate::config::{ComponentConfig, OnError, PipelineConfig};

/// Writes `files` (name, text) into a fresh folder.
fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// Translates `main` of `files`, expecting no problem.
fn translate(files: &[(&str, &str)], main: &str) -> Vec<PipelineConfig> {
    let dir = folder(files);
    let Translation {
        pipelines,
        problems,
    } = load(&dir.path().join(main));
    assert!(problems.is_empty(), "unexpected problems: {problems:#?}");
    pipelines
}

/// The problems translating `main` of `files` finds, one line each.
fn problems(files: &[(&str, &str)], main: &str) -> Vec<String> {
    let dir = folder(files);
    let found = load(&dir.path().join(main)).problems;
    assert!(!found.is_empty(), "expected problems");
    // Without the temporary folder, so that tests can compare text.
    let prefix = format!("{}/", dir.path().display());
    found
        .iter()
        .map(|p| p.to_string().replace(&prefix, ""))
        .collect()
}

fn component(c: &ComponentConfig) -> String {
    match c.label.as_deref() {
        Some(label) => format!("{}({label})", c.kind),
        None => c.kind.clone(),
    }
}

/// A pipeline in one line: name, tag, processors and output.
fn route(p: &PipelineConfig) -> String {
    let tag = p.input.body["tag"].as_str().unwrap_or("?").to_string();
    let filters: Vec<String> = p.processors.iter().map(component).collect();
    let output = match p.output.kind.as_str() {
        "broker" => {
            let outputs = p.output.body["outputs"].as_array().unwrap();
            let kinds: Vec<String> = outputs
                .iter()
                .map(|o| {
                    o.as_object()
                        .unwrap()
                        .keys()
                        .find(|k| *k != "label")
                        .unwrap()
                        .clone()
                })
                .collect();
            format!("broker[{}]", kinds.join(", "))
        }
        _ => component(&p.output),
    };
    format!(
        "{} {} [{tag}] | {} | {output}",
        p.name,
        component(&p.input),
        filters.join(", ")
    )
}

fn routes(pipelines: &[PipelineConfig]) -> Vec<String> {
    pipelines.iter().map(route).collect()
}

const SEED_004: &str = "[INPUT]
    Name exec_wasi
    Tag  exec.wasi.local
    WASI_Path /path/to/wasi_built_json.wasm
    # For security reasons, WASM/WASI program cannot access its outer world
    # without accessible permissions.
    # accessible_paths .,/path/to/fluent-bit

[OUTPUT]
    Name  stdout
    Match *
";

#[test]
fn seed_004_config_translates() {
    let pipelines = translate(&[("fluent-bit.conf", SEED_004)], "fluent-bit.conf");
    assert_eq!(
        routes(&pipelines),
        ["exec_wasi.0 exec_wasi(exec_wasi.0) [exec.wasi.local] |  | fluentbit_stdout(stdout.0)"]
    );
    let p = &pipelines[0];
    assert_eq!(
        p.input.body,
        json!({"tag": "exec.wasi.local", "wasi_path": "/path/to/wasi_built_json.wasm"})
    );
    assert_eq!(p.output.body, json!({}));
    assert!(p.ordered && matches!(p.on_error, OnError::Drop));
    assert_eq!(p.threads, crate::config::default_threads());
    assert_eq!(p.base_dir, None);
    assert_eq!(p.input.path, "[INPUT] at line 1");
    assert_eq!(p.output.path, "[OUTPUT] at line 9");
}

const ROUTING_CONF: &str = "[SERVICE]
    Flush     1
    Daemon    Off
    Log_Level info

[INPUT]
    Name  dummy
    Tag   app.web
    Rate  10

[INPUT]
    Name  dummy
    Alias sys
    Tag   sys.cpu

[INPUT]
    Name  stdin

[FILTER]
    Name          wasm
    Match         app.*
    WASM_Path     filter.wasm
    Function_Name go_filter

[FILTER]
    Name        wasm
    Alias       second
    Match_Regex ^(sys|stdin)
    WASM_Path   other.wasm

[FILTER]
    Name      wasm
    WASM_Path unrouted.wasm

[OUTPUT]
    Name   stdout
    Match  *
    Format json_lines

[OUTPUT]
    Name  file
    Match app.*
    Path  /tmp

[OUTPUT]
    Name  null
    Match stdin*
";

const ROUTING_YAML: &str = "service:
  flush: 1
  daemon: off
  log_level: info
pipeline:
  inputs:
    - name: dummy
      tag: app.web
      rate: 10
    - name: dummy
      alias: sys
      tag: sys.cpu
    - name: stdin
  filters:
    - name: wasm
      match: 'app.*'
      wasm_path: filter.wasm
      function_name: go_filter
    - name: wasm
      alias: second
      match_regex: ^(sys|stdin)
      wasm_path: other.wasm
    - name: wasm
      wasm_path: unrouted.wasm
  outputs:
    - name: stdout
      match: '*'
      format: json_lines
    - name: file
      match: 'app.*'
      path: /tmp
    - name: 'null'
      match: 'stdin*'
";

#[test]
fn both_dialects_route_the_same_way() {
    let expected = [
        "dummy.0 dummy(dummy.0) [app.web] | wasm_filter(wasm.0) | broker[fluentbit_stdout, fluentbit_file]",
        "sys dummy(sys) [sys.cpu] | wasm_filter(second) | fluentbit_stdout(stdout.0)",
        "stdin.2 stdin_records(stdin.2) [stdin.2] | wasm_filter(second) | broker[fluentbit_stdout, drop]",
    ];
    let classic = translate(&[("fb.conf", ROUTING_CONF)], "fb.conf");
    let yaml = translate(&[("fb.yaml", ROUTING_YAML)], "fb.yaml");
    assert_eq!(routes(&classic), expected);
    assert_eq!(routes(&yaml), expected);
    for pipelines in [&classic, &yaml] {
        let web = &pipelines[0];
        assert_eq!(web.input.body, json!({"tag": "app.web", "rate": "10"}));
        assert_eq!(
            web.processors[0].body,
            json!({"wasm_path": "filter.wasm", "function_name": "go_filter"})
        );
        assert_eq!(
            web.output.body["outputs"],
            json!([
                {"label": "stdout.0", "fluentbit_stdout": {"format": "json_lines"}},
                {"label": "file.1", "fluentbit_file": {"path": "/tmp", "retry_limit": 1}},
            ])
        );
        // `null` keeps none of its keys: `drop` takes none.
        assert_eq!(
            pipelines[2].output.body["outputs"][1],
            json!({"label": "null.2", "drop": {}})
        );
    }
}

#[test]
fn an_input_no_output_matches_goes_to_drop() {
    let conf = "[INPUT]\n    Name dummy\n    Tag a\n[INPUT]\n    Name dummy\n    Tag b\n\
                [OUTPUT]\n    Name stdout\n    Match a\n[OUTPUT]\n    Name file\n";
    let pipelines = translate(&[("x.conf", conf)], "x.conf");
    assert_eq!(
        routes(&pipelines),
        [
            "dummy.0 dummy(dummy.0) [a] |  | fluentbit_stdout(stdout.0)",
            // The file output has no Match: with two inputs, it gets nothing.
            "dummy.1 dummy(dummy.1) [b] |  | drop",
        ]
    );
}

#[test]
fn a_sole_output_without_match_takes_the_sole_input() {
    let conf = "[INPUT]\n    Name dummy\n[OUTPUT]\n    Name stdout\n";
    let pipelines = translate(&[("x.conf", conf)], "x.conf");
    assert_eq!(
        routes(&pipelines),
        ["dummy.0 dummy(dummy.0) [dummy.0] |  | fluentbit_stdout(stdout.0)"]
    );
}

#[test]
fn keys_and_section_names_are_case_insensitive() {
    let conf =
        "[input]\n\tNAME Dummy\n\tTAG T\n\tDummy {\"a\": 1}\n[Output]\n\tname STDOUT\n\tMATCH *\n";
    let pipelines = translate(&[("x.conf", conf)], "x.conf");
    assert_eq!(
        pipelines[0].input.body,
        json!({"tag": "T", "dummy": "{\"a\": 1}"})
    );
    let yaml = "Pipeline:\n  Inputs:\n    - Name: exec_wasi\n      wasiPath: a.wasm\n      \
                Buf_Size: 8k\n      accessible_paths: [., /tmp]\n  OUTPUTS:\n    - NAME: stdout\n      Match: '*'\n";
    let pipelines = translate(&[("x.yaml", yaml)], "x.yaml");
    assert_eq!(
        pipelines[0].input.body,
        json!({"wasi_path": "a.wasm", "buf_size": "8k", "accessible_paths": [".", "/tmp"], "tag": "exec_wasi.0"})
    );
    assert_eq!(pipelines[0].output.kind, "fluentbit_stdout");
}

#[test]
fn classic_includes_are_read_in_place_globs_too() {
    let files = [
        (
            "conf/main.conf",
            "@INCLUDE inputs/*.conf\n@INCLUDE output.conf\n[FILTER]\n    Name wasm\n    Match *\n    WASM_Path f.wasm\n",
        ),
        ("conf/inputs/a.conf", "[INPUT]\n    Name dummy\n    Tag a\n"),
        ("conf/inputs/b.conf", "[INPUT]\n  Name dummy\n  Tag b\n"),
        (
            "conf/output.conf",
            "[OUTPUT]\n    Name stdout\n    Match *\n",
        ),
    ];
    let pipelines = translate(&files, "conf/main.conf");
    assert_eq!(
        routes(&pipelines),
        [
            "dummy.0 dummy(dummy.0) [a] | wasm_filter(wasm.0) | fluentbit_stdout(stdout.0)",
            "dummy.1 dummy(dummy.1) [b] | wasm_filter(wasm.0) | fluentbit_stdout(stdout.0)",
        ]
    );
    // A section from an included file says which file.
    assert_eq!(pipelines[0].input.path, "[INPUT] at line 1 of a.conf");
    let missing = problems(&[("m.conf", "@INCLUDE nowhere.conf\n")], "m.conf");
    assert!(
        missing[0].starts_with("m.conf: field line 1: @INCLUDE nowhere.conf: no such file"),
        "{missing:?}"
    );
    let looped = problems(&[("m.conf", "@INCLUDE m.conf\n")], "m.conf");
    assert!(looped[0].contains("read twice"), "{looped:?}");
}

#[test]
fn yaml_includes_are_relative_to_the_including_file() {
    let files = [
        (
            "main.yaml",
            "includes:\n  - sub/pipeline.yaml\nservice:\n  flush: 1\n",
        ),
        (
            "sub/pipeline.yaml",
            "includes: [more/outputs.yaml]\npipeline:\n  inputs:\n    - name: dummy\n      tag: t\n",
        ),
        (
            "sub/more/outputs.yaml",
            "pipeline:\n  outputs:\n    - name: stdout\n      match: t\n",
        ),
    ];
    let pipelines = translate(&files, "main.yaml");
    assert_eq!(
        routes(&pipelines),
        ["dummy.0 dummy(dummy.0) [t] |  | fluentbit_stdout(stdout.0)"]
    );
    assert_eq!(
        pipelines[0].input.path,
        "pipeline.inputs[0] of pipeline.yaml"
    );
}

#[test]
fn variables_come_from_set_then_env_then_the_environment() {
    let path = std::env::var("PATH").unwrap();
    let conf = "@SET tag=from.set\n[INPUT]\n    Name dummy\n    Tag ${tag}\n    \
                Dummy {\"p\": \"${PATH}\", \"d\": \"${NOT_SET_ANYWHERE_X:-dflt}\", \"e\": \"${NOT_SET_ANYWHERE_X}\"}\n\
                [OUTPUT]\n    Name stdout\n    Match ${out}\n@SET out=from.*\n";
    let pipelines = translate(&[("x.conf", conf)], "x.conf");
    let body = &pipelines[0].input.body;
    assert_eq!(body["tag"], "from.set");
    let dummy: Value = serde_json::from_str(body["dummy"].as_str().unwrap()).unwrap();
    assert_eq!(dummy, json!({"p": path, "d": "dflt", "e": ""}));
    // @SET anywhere applies everywhere, as Fluent Bit runs it first.
    assert_eq!(pipelines[0].output.kind, "fluentbit_stdout");
    let yaml = "env:\n  T: from.env\n  N: 3\npipeline:\n  inputs:\n    - name: dummy\n      tag: ${T}\n      \
                rate: ${N}\n  outputs:\n    - name: stdout\n      match: ${T}\n";
    let pipelines = translate(&[("x.yaml", yaml)], "x.yaml");
    assert_eq!(
        pipelines[0].input.body,
        json!({"tag": "from.env", "rate": "3"})
    );
    assert_eq!(pipelines[0].output.kind, "fluentbit_stdout");
}

const JSON_PARSER: &str = "[PARSER]\n    Name   js\n    Format json\n    Time_Key time\n    \
                           Time_Format %Y-%m-%dT%H:%M:%S.%L%z\n    Time_Keep On\n";

fn parser_of(p: &PipelineConfig) -> Value {
    p.input.body["parser"].clone()
}

#[test]
fn a_parser_name_becomes_its_definition() {
    let expected = json!({"name": "js", "format": "json", "time_key": "time",
        "time_format": "%Y-%m-%dT%H:%M:%S.%L%z", "time_keep": "On"});
    let input = "[INPUT]\n    Name exec_wasi\n    WASI_Path a.wasm\n    Parser js\n";
    // A [PARSER] section in the config itself.
    let inline = format!("{input}{JSON_PARSER}");
    let pipelines = translate(&[("x.conf", inline.as_str())], "x.conf");
    assert_eq!(parser_of(&pipelines[0]), expected);
    // Parsers_File, beside the config, given twice; the first definition
    // of a name wins.
    let with_files = format!(
        "[SERVICE]\n    Parsers_File parsers.conf\n    Parsers_File more/parsers.yaml\n{input}\
         [INPUT]\n    Name stdin\n    Parser regex_one\n"
    );
    let files = [
        ("conf/x.conf", with_files.as_str()),
        ("conf/parsers.conf", JSON_PARSER),
        (
            "conf/more/parsers.yaml",
            "parsers:\n  - name: regex_one\n    format: regex\n    regex: '^(?<a>\\w+) (?<b>.*)$'\n  \
             - name: js\n    format: regex\n",
        ),
    ];
    let pipelines = translate(&files, "conf/x.conf");
    assert_eq!(parser_of(&pipelines[0]), expected);
    assert_eq!(
        parser_of(&pipelines[1]),
        json!({"name": "regex_one", "format": "regex", "regex": "^(?<a>\\w+) (?<b>.*)$"})
    );
    // YAML `parsers`, and `parsers_file` in a YAML service.
    let yaml = "service:\n  parsers_file: parsers.conf\nparsers:\n  - name: other\n    format: json\n\
                pipeline:\n  inputs:\n    - name: stdin\n      parser: other\n    - name: stdin\n      parser: js\n";
    let files = [("x.yaml", yaml), ("parsers.conf", JSON_PARSER)];
    let pipelines = translate(&files, "x.yaml");
    assert_eq!(
        parser_of(&pipelines[0]),
        json!({"name": "other", "format": "json"})
    );
    assert_eq!(parser_of(&pipelines[1]), expected);
}

#[test]
fn an_unknown_parser_is_a_problem_naming_it() {
    let conf = format!("{JSON_PARSER}[INPUT]\n    Name stdin\n    Parser nope\n");
    assert_eq!(
        problems(&[("x.conf", &conf)], "x.conf"),
        ["x.conf: field [INPUT] at line 7, key parser: no parser named `nope` (defined: js)"]
    );
    let missing = problems(
        &[("x.conf", "[SERVICE]\n    Parsers_File none.conf\n")],
        "x.conf",
    );
    assert!(
        missing[0].contains("key parsers_file: none.conf: no such file"),
        "{missing:?}"
    );
}

#[test]
fn an_unknown_plugin_is_a_problem_listing_the_supported_ones() {
    let conf = "[INPUT]\n    Name tail\n    Path /var/log/*.log\n[FILTER]\n    Name grep\n    Match *\n\
                [OUTPUT]\n    Name es\n    Match *\n";
    assert_eq!(
        problems(&[("x.conf", conf)], "x.conf"),
        [
            "x.conf: field [FILTER] at line 4, key name: wafer has no Fluent Bit filter plugin `grep` (supported: wasm)",
            "x.conf: field [OUTPUT] at line 7, key name: wafer has no Fluent Bit output plugin `es` (supported: file, http, null, stdout)",
            "x.conf: field [INPUT] at line 1, key name: wafer has no Fluent Bit input plugin `tail` (supported: dummy, exec_wasi, stdin)",
        ]
    );
    let yaml = "pipeline:\n  inputs:\n    - name: cpu\n";
    assert_eq!(
        problems(&[("x.yaml", yaml)], "x.yaml"),
        [
            "x.yaml: field pipeline.inputs[0].name: wafer has no Fluent Bit input plugin `cpu` (supported: dummy, exec_wasi, stdin)"
        ]
    );
}

#[test]
fn service_keys_asking_for_what_wafer_does_not_do_are_problems() {
    let conf = "[SERVICE]\n    Flush 5\n    Daemon On\n    HTTP_Server Off\n    Log_File /tmp/fb.log\n    \
                storage.metrics on\n    HTTP_Monitor Off\n[MULTILINE_PARSER]\n    Name m\n    Type regex\n";
    assert_eq!(
        problems(&[("x.conf", conf)], "x.conf"),
        [
            "x.conf: field [SERVICE] at line 1, key daemon: only Off: wafer runs in the foreground (use your service manager)",
            "x.conf: field [SERVICE] at line 1, key log_file: not supported: wafer logs to stderr",
            "x.conf: field [MULTILINE_PARSER] at line 8: wafer has no multiline parsers",
        ]
    );
}

#[test]
fn outputs_that_fail_retry_with_their_retry_limit_and_the_service_scheduler() {
    let conf = "[SERVICE]\n    scheduler.base 2\n    Scheduler.Cap 30\n[INPUT]\n    Name dummy\n    Tag t\n\
                [OUTPUT]\n    Name http\n    Match *\n    Port 9880\n    Retry_Limit no_limits\n\
                [OUTPUT]\n    Name file\n    Match *\n\
                [OUTPUT]\n    Name stdout\n    Match *\n    Retry_Limit 2\n\
                [OUTPUT]\n    Name null\n    Match *\n    Retry_Limit 3\n";
    let pipelines = translate(&[("x.conf", conf)], "x.conf");
    assert_eq!(
        pipelines[0].output.body["outputs"],
        json!([
            {"label": "http.0", "fluentbit_http": {
                "port": "9880", "retry_limit": "no_limits", "scheduler_base": 2, "scheduler_cap": 30,
            }},
            {"label": "file.1", "fluentbit_file": {"retry_limit": 1, "scheduler_base": 2, "scheduler_cap": 30}},
            // `stdout` and `null` never fail: nothing to retry.
            {"label": "stdout.2", "fluentbit_stdout": {}},
            {"label": "null.3", "drop": {}},
        ])
    );
    let bad = "[SERVICE]\n    scheduler.base soon\n    scheduler.cap 4294967296\n[INPUT]\n    Name dummy\n";
    assert_eq!(
        problems(&[("x.conf", bad)], "x.conf"),
        [
            "x.conf: field [SERVICE] at line 1, key scheduler.base: `soon` is not a whole number of seconds (up to 2147483647)",
            "x.conf: field [SERVICE] at line 1, key scheduler.cap: `4294967296` is not a whole number of seconds (up to 2147483647)",
        ]
    );
}

#[test]
fn layout_mistakes_are_problems_on_their_line() {
    let cases = [
        (
            "[INPUT]\nName dummy\n",
            "line 2: `Name dummy`: keys are indented",
        ),
        (
            "[INPUT]\n    Name dummy\n  Tag x\n",
            "line 3: indentation is lower",
        ),
        (
            "[INPUT]\n    Name dummy\n      Tag x\n",
            "line 3: extra indentation",
        ),
        ("[INPUT]\n    Name\n", "line 2: `Name` has no value"),
        ("[INPUT\n", "line 1: bad section header"),
        (
            "    Name dummy\n",
            "line 1: `Name dummy` is outside any section",
        ),
        (
            "@SET novalue\n",
            "line 1: `@SET novalue` is not `@SET KEY=VALUE`",
        ),
    ];
    for (conf, expected) in cases {
        let found = problems(&[("x.conf", conf)], "x.conf");
        assert!(
            found[0].starts_with(&format!("x.conf: field {expected}")),
            "{conf:?}: {found:?}"
        );
    }
    // Comments, indented ones too, CRLF line ends and groups read fine.
    let conf = "# top\r\n[INPUT]\r\n    # note\r\n    Name dummy\r\n\r\n[OUTPUT]\r\n    Name null\r\n    Match *\r\n";
    let pipelines = translate(&[("x.conf", conf)], "x.conf");
    assert_eq!(
        routes(&pipelines),
        ["dummy.0 dummy(dummy.0) [dummy.0] |  | drop(null.0)"]
    );
    let grouped =
        "[INPUT]\n    Name dummy\n    [PROCESSORS x]\n        a b\n[OUTPUT]\n    Name null\n";
    let found = problems(&[("x.conf", grouped)], "x.conf");
    assert!(
        found[0].contains("nested groups or processors"),
        "{found:?}"
    );
}

#[test]
fn fluent_bit_files_are_told_apart_from_benthos_and_registry_files() {
    let dir = folder(&[
        ("a.conf", SEED_004),
        ("fb.yaml", ROUTING_YAML),
        ("svc.yaml", "service:\n  flush: 1\n"),
        (
            "benthos.yaml",
            "input:\n  stdin: {}\npipeline:\n  threads: 1\noutput:\n  stdout: {}\n",
        ),
        (
            "registry.yaml",
            "version: \"1.0\"\nnamespace: app\nentries: []\n",
        ),
    ]);
    let is = |name: &str| is_fluentbit_file(&dir.path().join(name));
    assert!(is("a.conf") && is("fb.yaml") && is("svc.yaml"));
    assert!(!is("benthos.yaml") && !is("registry.yaml") && !is("missing.conf"));
    assert!(!is_fluentbit_file(Path::new(".")));
    let _: PathBuf = dir.path().to_path_buf();
}

#[test]
fn aliases_name_instances_and_an_input_alias_is_its_own() {
    let conf = "[INPUT]\n    Name dummy\n    Alias same\n[OUTPUT]\n    Name stdout\n    Alias same\n    Match *\n";
    let pipelines = translate(&[("x.conf", conf)], "x.conf");
    // Fluent Bit lets an input and an output share an alias; only the
    // first keeps it as its label. The tag stays the instance's own name.
    assert_eq!(
        routes(&pipelines),
        ["same dummy(same) [dummy.0] |  | fluentbit_stdout"]
    );
    let twice = "[INPUT]\n    Name dummy\n    Alias a\n[INPUT]\n    Name stdin\n    Alias a\n";
    assert_eq!(
        problems(&[("x.conf", twice)], "x.conf"),
        [
            "x.conf: field [INPUT] at line 4, key alias: another input is named `a`: each input's name or alias is its own"
        ]
    );
}

#[test]
fn a_parser_wafer_cannot_build_is_named_at_its_section_when_used() {
    let parsers = "[PARSER]\n    Name   lt\n    Format ltsv\n\n[PARSER]\n    Name   bad\n    Format regex\n    Regex  (?<a>x\n";
    // Unused, neither is a problem: Fluent Bit's stock parsers files hold
    // formats wafer lacks.
    let unused =
        format!("{parsers}[INPUT]\n    Name dummy\n[OUTPUT]\n    Name null\n    Match *\n");
    translate(&[("x.conf", &unused)], "x.conf");
    let used = format!(
        "{parsers}[INPUT]\n    Name stdin\n    Parser bad\n[OUTPUT]\n    Name null\n    Match *\n"
    );
    let found = problems(&[("x.conf", &used)], "x.conf");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("x.conf: field [PARSER] at line 5"),
        "{found:?}"
    );
}
