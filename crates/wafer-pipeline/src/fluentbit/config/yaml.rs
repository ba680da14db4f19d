//! The YAML dialect, read as `flb_cf_yaml.c` reads it: top-level sections
//! `env`, `includes`, `service`, `pipeline` (`inputs`, `filters`,
//! `outputs`), `parsers`, `multiline_parsers`, `customs`, `plugins`,
//! `stream_processor`, and any other name kept as an ignored section.
//! Section names are case-insensitive; a plugin's keys are lowercased
//! after a `camelCase` key becomes `camel_case`; scalars are text, as
//! libyaml hands them to Fluent Bit. `includes` are relative to the
//! including file (globs allowed); a file read twice is a problem.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use wafer::{Problem, ProblemKind};

use super::{Document, Kind, Place, Section, file_problem, folder};

/// Reads the YAML config at `path` and what it includes into `document`.
pub(super) fn read_root(path: &Path, document: &mut Document, problems: &mut Vec<Problem>) {
    let mut reader = Reader {
        seen: HashSet::new(),
        service: false,
    };
    reader.read(path, document, problems);
}

/// Reads a parsers file in YAML (its `parsers` and `multiline_parsers`)
/// into `document`.
pub(super) fn read_parsers(path: &Path, document: &mut Document, problems: &mut Vec<Problem>) {
    read_root(path, document, problems);
}

struct Reader {
    seen: HashSet<PathBuf>,
    /// A `service` section was read: Fluent Bit refuses a second.
    service: bool,
}

impl Reader {
    fn read(&mut self, path: &Path, document: &mut Document, problems: &mut Vec<Problem>) {
        let problem = |kind, message: String| file_problem(path, kind, message);
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                return problems.push(problem(
                    ProblemKind::Unreadable,
                    format!("cannot read it: {e}"),
                ));
            }
        };
        let real = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if !self.seen.insert(real) {
            return problems.push(problem(
                ProblemKind::Syntax,
                "this file is included twice, which Fluent Bit refuses".into(),
            ));
        }
        let top = match serde_norway::from_str::<Value>(&text) {
            Ok(Value::Object(top)) => top,
            Ok(Value::Null) => Map::new(),
            Ok(_) => {
                return problems.push(problem(
                    ProblemKind::Syntax,
                    "a Fluent Bit YAML config is a mapping (service, pipeline, parsers...)".into(),
                ));
            }
            Err(e) => {
                return problems.push(problem(ProblemKind::Syntax, format!("not valid YAML: {e}")));
            }
        };
        for (name, value) in top {
            match name.to_ascii_lowercase().as_str() {
                "env" => env(path, value, document, problems),
                "includes" => self.includes(path, value, document, problems),
                "service" if self.service => problems.push(problem(
                    ProblemKind::DuplicateKey,
                    "`service` is defined twice (here or in an included file)".into(),
                )),
                "service" => {
                    self.service = true;
                    let place = name.clone();
                    section(path, Kind::Service, &name, place, value, document, problems);
                }
                "pipeline" => pipeline(path, value, document, problems),
                "parsers" => list(path, Kind::Parser, &name, value, document, problems),
                "multiline_parsers" => list(
                    path,
                    Kind::MultilineParser,
                    &name,
                    value,
                    document,
                    problems,
                ),
                "customs" => list(path, Kind::Custom, &name, value, document, problems),
                other => {
                    let kind = match other {
                        "plugins" => Kind::Plugins,
                        "stream_processor" => Kind::StreamProcessor,
                        _ => Kind::Other,
                    };
                    // Only named: whether it declares anything is what matters.
                    let declares = match &value {
                        Value::Array(items) => !items.is_empty(),
                        Value::Object(map) => !map.is_empty(),
                        Value::Null => false,
                        _ => true,
                    };
                    let marker = match declares {
                        true => Value::Object(Map::from_iter([(name.clone(), Value::Null)])),
                        false => Value::Null,
                    };
                    let place = name.clone();
                    section(path, kind, &name, place, marker, document, problems);
                }
            }
        }
    }

    /// `includes: [file, glob...]`, relative to `path`'s folder.
    fn includes(
        &mut self,
        path: &Path,
        value: Value,
        document: &mut Document,
        problems: &mut Vec<Problem>,
    ) {
        let items = match value {
            Value::Array(items) => items,
            Value::String(one) => vec![Value::String(one)],
            _ => {
                return problems.push(
                    file_problem(
                        path,
                        ProblemKind::InvalidValue,
                        "`includes` is a list of files",
                    )
                    .at_field("includes"),
                );
            }
        };
        let dir = folder(path);
        for item in items {
            let Some(name) = item.as_str() else {
                problems.push(
                    file_problem(path, ProblemKind::InvalidValue, "an include is a file name")
                        .at_field("includes"),
                );
                continue;
            };
            let full = dir.join(name);
            if !name.contains('*') {
                self.read(&full, document, problems);
                continue;
            }
            let mut files: Vec<PathBuf> = glob::glob(&full.to_string_lossy())
                .map(|found| found.filter_map(Result::ok).collect())
                .unwrap_or_default();
            if files.is_empty() {
                problems.push(
                    file_problem(
                        path,
                        ProblemKind::Unreadable,
                        format!("no file matches {}", full.display()),
                    )
                    .at_field("includes"),
                );
            }
            files.sort();
            for file in files {
                self.read(&file, document, problems);
            }
        }
    }
}

/// `env: {NAME: value}`, or `env: [{name, value}]`.
fn env(path: &Path, value: Value, document: &mut Document, problems: &mut Vec<Problem>) {
    let problem = |field: String, message: &str| {
        file_problem(path, ProblemKind::InvalidValue, message).at_field(field)
    };
    match value {
        Value::Null => {}
        Value::Object(vars) => {
            for (name, value) in vars {
                match scalar(&value) {
                    Some(text) => document.vars.push((name, text)),
                    None => problems.push(problem(
                        format!("env.{name}"),
                        "a variable's value is a scalar",
                    )),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                let field = format!("env[{i}]");
                let Value::Object(var) = item else {
                    problems.push(problem(
                        field,
                        "an env item is a mapping with `name` and `value`",
                    ));
                    continue;
                };
                let get = |key: &str| {
                    var.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(key))
                        .map(|(_, v)| v)
                };
                if get("uri").is_some() {
                    problems.push(problem(
                        format!("{field}.uri"),
                        "wafer does not read variables from a `uri` (use `value`)",
                    ));
                    continue;
                }
                match (get("name").and_then(scalar), get("value").and_then(scalar)) {
                    (Some(name), Some(value)) => document.vars.push((name, value)),
                    _ => problems.push(problem(field, "an env item has a `name` and a `value`")),
                }
            }
        }
        _ => problems.push(problem("env".into(), "`env` is a mapping of variables")),
    }
}

/// `pipeline: {inputs: [...], filters: [...], outputs: [...]}`.
fn pipeline(path: &Path, value: Value, document: &mut Document, problems: &mut Vec<Problem>) {
    let Value::Object(groups) = value else {
        if !value.is_null() {
            problems.push(
                file_problem(
                    path,
                    ProblemKind::InvalidValue,
                    "`pipeline` is a mapping of inputs, filters and outputs",
                )
                .at_field("pipeline"),
            );
        }
        return;
    };
    for (name, plugins) in groups {
        let kind = match name.to_ascii_lowercase().as_str() {
            "inputs" => Kind::Input,
            "filters" => Kind::Filter,
            "outputs" => Kind::Output,
            "customs" => Kind::Custom,
            _ => {
                problems.push(
                    file_problem(
                        path,
                        ProblemKind::UnknownField,
                        format!("the pipeline component `{name}` is not valid (customs, inputs, filters or outputs)"),
                    )
                    .at_field(format!("pipeline.{name}")),
                );
                continue;
            }
        };
        list(
            path,
            kind,
            &format!("pipeline.{name}"),
            plugins,
            document,
            problems,
        );
    }
}

/// A list of plugins or parsers at `at`, each a section.
fn list(
    path: &Path,
    kind: Kind,
    at: &str,
    value: Value,
    document: &mut Document,
    problems: &mut Vec<Problem>,
) {
    let items = match value {
        Value::Array(items) => items,
        Value::Null => return,
        _ => {
            return problems.push(
                file_problem(path, ProblemKind::InvalidValue, format!("`{at}` is a list"))
                    .at_field(at),
            );
        }
    };
    for (i, item) in items.into_iter().enumerate() {
        let place = format!("{at}[{i}]");
        if !item.is_object() {
            problems.push(
                file_problem(
                    path,
                    ProblemKind::InvalidValue,
                    "each item is a mapping of keys",
                )
                .at_field(place),
            );
            continue;
        }
        section(path, kind, at, place, item, document, problems);
    }
}

/// One section from a mapping of its keys (or from nothing, for sections
/// wafer only names).
fn section(
    path: &Path,
    kind: Kind,
    header: &str,
    place: String,
    value: Value,
    document: &mut Document,
    problems: &mut Vec<Problem>,
) {
    let mut section = Section {
        kind,
        header: header.to_string(),
        file: path.to_path_buf(),
        place: Place::Yaml(place.clone()),
        props: Vec::new(),
        groups: Vec::new(),
    };
    let map = match value {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        _ => {
            return problems.push(
                file_problem(
                    path,
                    ProblemKind::InvalidValue,
                    "a section is a mapping of keys",
                )
                .at_field(place),
            );
        }
    };
    // An ignored section keeps no keys but says it had some.
    let keep = !matches!(kind, Kind::Plugins | Kind::StreamProcessor | Kind::Other);
    for (key, value) in map {
        let key = translate_key(&key);
        if !keep {
            section.props.push((key, Value::Null));
            continue;
        }
        match value {
            Value::Array(items) if items.iter().all(|item| scalar(item).is_some()) => {
                let items = items.iter().filter_map(scalar).map(Value::String).collect();
                section.props.push((key, Value::Array(items)));
            }
            Value::Array(_) | Value::Object(_) => section.groups.push(key),
            // libyaml hands Fluent Bit the text `null`; serde only the null.
            Value::Null if key == "name" => {
                section.props.push((key, Value::String("null".into())));
            }
            scalar_value => {
                let text = scalar(&scalar_value).unwrap_or_default();
                section.props.push((key, Value::String(text)));
            }
        }
    }
    document.sections.push(section);
}

/// A scalar as the text libyaml gives Fluent Bit.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// A YAML key as Fluent Bit's `flb_cf_key_translate` makes it (a
/// `camelCase` key becomes `camel_case`), lowercased.
fn translate_key(key: &str) -> String {
    let camel = key.starts_with(|c: char| c.is_ascii_lowercase()) && !key.contains('_');
    if !camel {
        return key.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(key.len() + 4);
    for (i, c) in key.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}
