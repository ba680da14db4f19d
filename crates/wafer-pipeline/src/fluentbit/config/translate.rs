//! Sections into pipelines: variables replaced, `SERVICE` honoured,
//! parsers gathered, then one pipeline per input with the filters and
//! outputs its tag routes to.

use std::path::Path;

use serde_json::{Map, Value, json};
use wafer::{Problem, ProblemKind};

use super::routing::Rule;
use super::service::{Parsers, Scheduler, service};
use super::{Document, Kind, Section, Translation, expand};
use crate::config::{ComponentConfig, PipelineConfig};

/// Fluent Bit's plugins wafer has, and the component each becomes.
const INPUTS: &[(&str, &str)] = &[
    ("dummy", "dummy"),
    ("exec_wasi", "exec_wasi"),
    ("stdin", "stdin_records"),
];
const FILTERS: &[(&str, &str)] = &[("wasm", "wasm_filter")];
const OUTPUTS: &[(&str, &str)] = &[
    ("file", "fluentbit_file"),
    ("http", "fluentbit_http"),
    ("null", "drop"),
    ("stdout", "fluentbit_stdout"),
];

/// Keys of every plugin instance that are Fluent Bit's own (naming,
/// routing, logging): read here, never passed to the component.
const GENERAL: &[&str] = &[
    "name",
    "alias",
    "log_level",
    "log_suppress_interval",
    "match",
    "match_regex",
];

/// Keys about Fluent Bit's buffering and threading, which wafer's
/// bounded pipeline replaces: accepted and ignored.
const IGNORED: &[&str] = &[
    "mem_buf_limit",
    "threaded",
    "storage.pause_on_chunks_overlimit",
    "workers",
    "storage.total_limit_size",
    "buffer_chunk_size",
    "buffer_max_size",
];

/// Plugin keys Fluent Bit takes several times (`FLB_CONFIG_MAP_MULT`):
/// always passed as a list.
const MULTI: &[&str] = &["header"];

pub(super) fn translate(
    main: &Path,
    document: Document,
    mut problems: Vec<Problem>,
) -> Translation {
    let Document { mut sections, vars } = document;
    let lookup = variables(vars);
    expand_all(&mut sections, &lookup);
    let mut parsers = Parsers::default();
    let mut scheduler = Scheduler::default();
    for section in &sections {
        match section.kind {
            Kind::Service => service(
                main,
                section,
                &lookup,
                (&mut parsers, &mut scheduler),
                &mut problems,
            ),
            Kind::MultilineParser => problems.push(section.problem(
                ProblemKind::UnknownKind,
                "",
                "wafer has no multiline parsers",
            )),
            Kind::Custom => problems.push(section.problem(
                ProblemKind::UnknownKind,
                "",
                "wafer has no Fluent Bit custom plugins",
            )),
            Kind::StreamProcessor => problems.push(section.problem(
                ProblemKind::UnknownKind,
                "",
                "wafer has no stream processor",
            )),
            Kind::Plugins if !section.props.is_empty() => problems.push(section.problem(
                ProblemKind::UnknownKind,
                "",
                "wafer does not load Fluent Bit plugins (.so files)",
            )),
            Kind::Other => tracing::warn!(
                file = %section.file.display(),
                "Fluent Bit ignores the section `{}`; so does wafer.",
                section.header
            ),
            _ => {}
        }
    }
    // Parsers_File's parsers come first: a later one of the same name is
    // skipped, as in Fluent Bit.
    for section in sections.iter().filter(|s| s.kind == Kind::Parser) {
        parsers.add(section, &mut problems);
    }
    let of = |kind| sections.iter().filter(move |s| s.kind == kind);
    let inputs: Vec<&Section> = of(Kind::Input).collect();
    let filters: Vec<Plugin> = of(Kind::Filter)
        .enumerate()
        .map(|(i, s)| Plugin::new(s, i, "filter", FILTERS, &mut problems))
        .collect();
    let outputs: Vec<Plugin> = of(Kind::Output)
        .enumerate()
        .map(|(i, s)| Plugin::new(s, i, "output", OUTPUTS, &mut problems))
        .collect();
    let sole = inputs.len() == 1 && outputs.len() == 1;
    for (plugin, output) in filters
        .iter()
        .map(|f| (f, false))
        .chain(outputs.iter().map(|o| (o, true)))
    {
        if plugin.rule.is_empty() && !(output && sole) {
            tracing::warn!(
                file = %plugin.section.file.display(),
                "{} has no Match or Match_Regex: no record reaches it (as in Fluent Bit).",
                plugin.instance
            );
        }
    }
    let mut pipelines = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (index, section) in inputs.iter().enumerate() {
        let Some(input) = Plugin::new_input(section, index, &parsers, &mut problems) else {
            continue;
        };
        if !names.insert(input.instance.clone()) {
            problems.push(section.problem(
                ProblemKind::DuplicateId,
                "alias",
                format!(
                    "another input is named `{}`: each input's name or alias is its own",
                    input.instance
                ),
            ));
            continue;
        }
        // Set when the input was read (`Plugin::new_input`).
        let tag = input
            .body
            .get("tag")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let routed: Vec<&Plugin> = filters.iter().filter(|f| f.rule.matches(&tag)).collect();
        // One input and one output: the output takes everything, even
        // without a Match (Fluent Bit's command-line case).
        let to: Vec<&Plugin> = outputs
            .iter()
            .filter(|o| o.rule.matches(&tag) || (sole && o.rule.is_empty()))
            .collect();
        if !input.ok || routed.iter().chain(&to).any(|p| !p.ok) {
            continue;
        }
        if to.is_empty() {
            tracing::warn!(input = %input.instance, tag = %tag, "No output matches this input's tag: its records are dropped.");
        }
        match pipeline(main, &input, &routed, &to, scheduler) {
            Ok(config) => pipelines.push(config),
            Err(found) => problems.extend(found),
        }
    }
    Translation {
        pipelines,
        problems,
    }
}

/// One input's pipeline, in the Benthos shape `PipelineConfig` reads,
/// its components then named after their Fluent Bit sections.
fn pipeline(
    main: &Path,
    input: &Plugin,
    filters: &[&Plugin],
    outputs: &[&Plugin],
    scheduler: Scheduler,
) -> Result<PipelineConfig, Vec<Problem>> {
    // Each component is labelled with its instance name, unless an
    // earlier one has it: Fluent Bit lets an input and an output share an
    // alias, a pipeline's labels are unique.
    let mut used = std::collections::HashSet::new();
    let mut labelled = |p: &Plugin, body: Value| match used.insert(p.instance.clone()) {
        true => json!({"label": p.instance, p.kind: body}),
        false => json!({p.kind: body}),
    };
    let input_value = labelled(input, Value::Object(input.body.clone()));
    let processors: Vec<Value> = filters
        .iter()
        .map(|f| labelled(f, Value::Object(f.body.clone())))
        .collect();
    let output = match outputs {
        [] => json!({"drop": {}}),
        [one] => labelled(one, retrying(one, scheduler)),
        several => json!({"broker": {
            "pattern": "fan_out",
            "outputs": several
                .iter()
                .map(|p| json!({"label": p.instance, p.kind: retrying(p, scheduler)}))
                .collect::<Vec<_>>(),
        }}),
    };
    let body = json!({
        "input": input_value,
        "pipeline": {
            "ordered": true,
            "processors": processors,
        },
        "output": output,
        "on_error": "drop",
    });
    let mut config = PipelineConfig::from_translated(&input.instance, main, body)?;
    config.input.path = input.section.place(main);
    for (processor, filter) in config.processors.iter_mut().zip(filters) {
        processor.path = filter.section.place(main);
    }
    rename(&mut config.output, main, outputs, &input.instance);
    Ok(config)
}

/// An output's fields, with how Fluent Bit's engine retries it: the
/// section's `Retry_Limit` and the `SERVICE`'s scheduler, for the outputs
/// that fail (`Retry_Limit` is ignored on the others, as `stdout` and
/// `null` never fail in Fluent Bit).
fn retrying(output: &Plugin, scheduler: Scheduler) -> Value {
    let mut body = output.body.clone();
    if !crate::outputs::RETRIED.contains(&output.kind) {
        body.remove("retry_limit");
        return Value::Object(body);
    }
    // Fluent Bit retries every output: once by default.
    body.entry("retry_limit").or_insert_with(|| 1.into());
    for (key, seconds) in [
        ("scheduler_base", scheduler.base),
        ("scheduler_cap", scheduler.cap),
    ] {
        if let Some(seconds) = seconds {
            body.insert(key.into(), seconds.into());
        }
    }
    Value::Object(body)
}

/// Names the output after the section(s) it comes from.
fn rename(output: &mut ComponentConfig, main: &Path, outputs: &[&Plugin], input: &str) {
    output.path = match outputs {
        [] => format!("the output of {input} (none matches its tag)"),
        several => several
            .iter()
            .map(|o| o.section.place(main))
            .collect::<Vec<_>>()
            .join(" + "),
    };
}

/// A filter's, output's or input's section, translated.
struct Plugin<'a> {
    section: &'a Section,
    /// Its name: `Alias`, or `<plugin>.<index>`.
    instance: String,
    /// The wafer component it becomes.
    kind: &'static str,
    /// The component's fields.
    body: Map<String, Value>,
    rule: Rule,
    /// It translated without a problem.
    ok: bool,
}

impl<'a> Plugin<'a> {
    /// A filter or output section (`what`), the `index`th of its kind.
    fn new(
        section: &'a Section,
        index: usize,
        what: &str,
        table: &[(&str, &'static str)],
        problems: &mut Vec<Problem>,
    ) -> Plugin<'a> {
        let before = problems.len();
        let (instance, kind) = identify(section, index, what, table, problems);
        let rule =
            Rule::new(section.text("match"), section.text("match_regex")).unwrap_or_else(|e| {
                problems.push(section.problem(ProblemKind::InvalidValue, "match_regex", e));
                Rule::default()
            });
        let mut body = body(section, problems);
        if kind == "drop" {
            // `null` takes format keys it never uses; `drop` takes none.
            body.clear();
        }
        Plugin {
            section,
            instance,
            kind,
            body,
            rule,
            ok: problems.len() == before,
        }
    }

    /// The `index`th input section; `None` when it names no plugin.
    fn new_input(
        section: &'a Section,
        index: usize,
        parsers: &Parsers,
        problems: &mut Vec<Problem>,
    ) -> Option<Plugin<'a>> {
        let before = problems.len();
        let (instance, kind) = identify(section, index, "input", INPUTS, problems);
        if instance.is_empty() {
            return None;
        }
        let mut body = body(section, problems);
        if !body.contains_key("tag") {
            // Fluent Bit's default tag: the instance's own name,
            // `<plugin>.<index>`, whatever its `Alias`.
            let plugin = section
                .text("name")
                .unwrap_or_default()
                .to_ascii_lowercase();
            body.insert("tag".into(), Value::String(format!("{plugin}.{index}")));
        }
        for key in ["match", "match_regex"] {
            if section.get(key).is_some() {
                problems.push(section.problem(
                    ProblemKind::UnknownField,
                    key,
                    "an input has a Tag, not a Match",
                ));
            }
        }
        if let Some(name) = body.get("parser").and_then(Value::as_str) {
            match parsers.get(name) {
                Some(Ok(definition)) => {
                    body.insert("parser".into(), Value::Object(definition.clone()));
                }
                Some(Err(unusable)) => problems.push(unusable.clone()),
                None => problems.push(section.problem(
                    ProblemKind::Reference,
                    "parser",
                    format!(
                        "no parser named `{name}` (defined: {})",
                        parsers.names().unwrap_or_else(|| "none".into())
                    ),
                )),
            }
        }
        Some(Plugin {
            section,
            instance,
            kind,
            body,
            rule: Rule::default(),
            ok: problems.len() == before,
        })
    }
}

/// The instance name and component of a plugin section; an empty name
/// when the section names no plugin (a problem says so).
fn identify(
    section: &Section,
    index: usize,
    what: &str,
    table: &[(&str, &'static str)],
    problems: &mut Vec<Problem>,
) -> (String, &'static str) {
    let Some(plugin) = section.text("name").map(str::to_ascii_lowercase) else {
        problems.push(section.problem(
            ProblemKind::MissingField,
            "name",
            format!("the {what} names no plugin (`Name`)"),
        ));
        return (String::new(), "");
    };
    let instance = section
        .text("alias")
        .map_or_else(|| format!("{plugin}.{index}"), str::to_string);
    let kind = match table.iter().find(|(name, _)| *name == plugin) {
        Some((_, kind)) => kind,
        None => {
            let known: Vec<&str> = table.iter().map(|(name, _)| *name).collect();
            problems.push(section.problem(
                ProblemKind::UnknownKind,
                "name",
                format!(
                    "wafer has no Fluent Bit {what} plugin `{plugin}` (supported: {})",
                    known.join(", ")
                ),
            ));
            ""
        }
    };
    for group in &section.groups {
        problems.push(section.problem(
            ProblemKind::UnknownField,
            group,
            format!("wafer does not support nested groups or processors in a Fluent Bit {what}"),
        ));
    }
    (instance, kind)
}

/// The plugin's own keys, as the component's fields.
fn body(section: &Section, problems: &mut Vec<Problem>) -> Map<String, Value> {
    let mut body = Map::new();
    for (key, value) in &section.props {
        if GENERAL.contains(&key.as_str()) || IGNORED.contains(&key.as_str()) {
            continue;
        }
        if key == "storage.type" {
            if value
                .as_str()
                .is_some_and(|v| !v.eq_ignore_ascii_case("memory"))
            {
                problems.push(section.problem(
                    ProblemKind::InvalidValue,
                    key,
                    "wafer buffers in memory only (storage.type memory)",
                ));
            }
            continue;
        }
        if MULTI.contains(&key.as_str()) {
            let list = body
                .entry(key.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = list {
                match value {
                    Value::Array(more) => items.extend(more.iter().cloned()),
                    one => items.push(one.clone()),
                }
            }
            continue;
        }
        body.insert(key.clone(), value.clone());
    }
    body
}

/// The variable lookup: `@SET`/`env` (a later one wins), then
/// `HOSTNAME` (Fluent Bit sets it when the shell does not export it),
/// then the environment, where an empty variable is unset.
fn variables(vars: Vec<(String, String)>) -> impl Fn(&str) -> Option<String> {
    move |name: &str| {
        if let Some((_, value)) = vars.iter().rev().find(|(n, _)| n == name) {
            return Some(value.clone());
        }
        let from_env = std::env::var(name).ok().filter(|v| !v.is_empty());
        if from_env.is_none() && name == "HOSTNAME" {
            return std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string());
        }
        from_env
    }
}

/// Replaces the variables in every value of `sections`.
pub(super) fn expand_all(sections: &mut [Section], lookup: &dyn Fn(&str) -> Option<String>) {
    for section in sections {
        let mut unset = Vec::new();
        for (_, value) in &mut section.props {
            match value {
                Value::String(text) => *text = expand(text, lookup, &mut unset),
                Value::Array(items) => {
                    for item in items {
                        if let Value::String(text) = item {
                            *text = expand(text, lookup, &mut unset);
                        }
                    }
                }
                _ => {}
            }
        }
        for name in unset {
            tracing::warn!(file = %section.file.display(), "The variable ${{{name}}} is used but not set: it is empty (as in Fluent Bit).");
        }
    }
}
