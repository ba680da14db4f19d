//! The `SERVICE` section (`Parsers_File` read; harmless keys ignored;
//! keys asking for what wafer does not do refused) and the parsers an
//! input's `Parser` names.

use std::path::Path;

use serde_json::{Map, Value};
use wafer::{Problem, ProblemKind};

use super::translate::expand_all;
use super::{Document, Kind, Section, classic, folder, locate, yaml};
use crate::parsers::{Parser, ParserConfig};

/// `SERVICE` keys with nothing to do in wafer: accepted and ignored.
const SERVICE_IGNORED: &[&str] = &[
    "flush",
    "grace",
    "log_level",
    "coro_stack_size",
    "http_listen",
    "http_port",
    "health_check",
    "hc_errors_count",
    "hc_retry_failure_count",
    "hc_period",
    "storage.path",
    "storage.sync",
    "storage.metrics",
    "storage.checksum",
    "storage.backlog.mem_limit",
    "storage.backlog.flush_on_shutdown",
    "storage.max_chunks_up",
    "storage.delete_irrecoverable_chunks",
    "storage.trim_files",
    "storage.type",
    "storage.inherit",
    "storage.rejected.path",
    "storage.rejected.limit",
    "dns.mode",
    "dns.resolver",
    "dns.prefer_ipv4",
    "dns.prefer_ipv6",
    "hot_reload.ensure_thread_safety",
    "hot_reload.timeout",
    "windows.maxstdio",
    "multiline_buffer_limit",
    "sp.convert_from_str_to_num",
    "json.convert_nan_to_null",
    "json.escape_unicode",
];

/// `SERVICE` switches wafer accepts only when off, and what each asks for.
const SERVICE_OFF: &[(&str, &str)] = &[
    (
        "daemon",
        "wafer runs in the foreground (use your service manager)",
    ),
    ("http_server", "wafer has no Fluent Bit monitoring server"),
    ("hot_reload", "wafer does not reload a Fluent Bit config"),
    ("enable_chunk_trace", "wafer has no chunk tracing"),
    ("storage.keep.rejected", "wafer keeps no rejected chunks"),
    ("security.fips_mode", "wafer has no FIPS mode"),
];

/// `SERVICE` keys asking for what wafer does not do.
const SERVICE_REFUSED: &[(&str, &str)] = &[
    ("log_file", "wafer logs to stderr"),
    ("streams_file", "wafer has no stream processor"),
    ("telemetry", "wafer has no Fluent Bit telemetry"),
];

/// `scheduler.base` and `scheduler.cap`, in seconds, when the `SERVICE`
/// sets them: the waits between an output's retries (`fluentbit_retry`
/// has Fluent Bit's defaults).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Scheduler {
    pub base: Option<u64>,
    pub cap: Option<u64>,
}

/// The `SERVICE` section: `Parsers_File` read, the scheduler's settings
/// taken, harmless keys ignored, keys asking for what wafer does not do
/// refused.
pub(super) fn service(
    main: &Path,
    section: &Section,
    lookup: &dyn Fn(&str) -> Option<String>,
    (parsers, scheduler): (&mut Parsers, &mut Scheduler),
    problems: &mut Vec<Problem>,
) {
    for (key, value) in &section.props {
        let texts: Vec<&str> = match value {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let key = key.as_str();
        if key == "parsers_file" {
            for file in texts {
                parsers.read_file(main, section, file, lookup, problems);
            }
        } else if key == "plugins_file" {
            for file in texts {
                plugins_file(main, section, file, problems);
            }
        } else if let Some(setting) = match key {
            "scheduler.base" => Some(&mut scheduler.base),
            "scheduler.cap" => Some(&mut scheduler.cap),
            _ => None,
        } {
            // Fluent Bit keeps them in an `int`.
            match texts.last().and_then(|t| t.trim().parse::<u32>().ok()) {
                Some(seconds) if seconds <= i32::MAX as u32 => *setting = Some(seconds.into()),
                _ => problems.push(section.problem(
                    ProblemKind::InvalidValue,
                    key,
                    format!(
                        "`{}` is not a whole number of seconds (up to {})",
                        texts.join(" "),
                        i32::MAX
                    ),
                )),
            }
        } else if let Some((_, why)) = SERVICE_OFF.iter().find(|(k, _)| *k == key) {
            if texts
                .iter()
                .any(|t| crate::fluentbit::value::parse_bool(t) != Ok(false))
            {
                problems.push(section.problem(
                    ProblemKind::InvalidValue,
                    key,
                    format!("only Off: {why}"),
                ));
            }
        } else if let Some((_, why)) = SERVICE_REFUSED.iter().find(|(k, _)| *k == key) {
            problems.push(section.problem(
                ProblemKind::UnknownField,
                key,
                format!("not supported: {why}"),
            ));
        } else if !SERVICE_IGNORED.contains(&key) && !key.starts_with("flush.adaptive") {
            tracing::warn!(file = %section.file.display(), "Fluent Bit ignores the SERVICE key `{key}`; so does wafer.");
        }
    }
    if !section.groups.is_empty() {
        problems.push(section.problem(
            ProblemKind::UnknownField,
            &section.groups[0],
            "wafer has no nested SERVICE settings",
        ));
    }
}

/// `Plugins_File`: harmless when it declares no plugin (Fluent Bit's own
/// `plugins.conf` is only comments).
fn plugins_file(main: &Path, section: &Section, file: &str, problems: &mut Vec<Problem>) {
    let path = locate(file, &folder(main));
    let mut document = Document::default();
    let mut found = Vec::new();
    classic::read_root(&path, &mut document, &mut found);
    let declares = document.sections.iter().any(|s| !s.props.is_empty());
    if !found.is_empty() || declares {
        problems.push(section.problem(
            ProblemKind::UnknownField,
            "plugins_file",
            format!("{file}: wafer does not load Fluent Bit plugins (.so files)"),
        ));
    }
}

/// Parser definitions by name, in the order Fluent Bit registers them.
#[derive(Default)]
pub(super) struct Parsers {
    defined: Vec<Defined>,
}

/// A parser as its section defines it.
struct Defined {
    name: String,
    definition: Map<String, Value>,
    /// Why wafer cannot build it, named at its own section: reported when
    /// an input uses it (an unused one is no problem, so that Fluent Bit's
    /// stock parsers files, with formats wafer lacks, still load).
    unusable: Option<Problem>,
}

impl Parsers {
    /// Adds a `[PARSER]` section; one with a name already taken is
    /// skipped with a warning, as Fluent Bit skips it.
    pub(super) fn add(&mut self, section: &Section, problems: &mut Vec<Problem>) {
        let Some(name) = section.text("name").filter(|n| !n.is_empty()) else {
            return problems.push(section.problem(
                ProblemKind::MissingField,
                "name",
                "a parser has a `Name`",
            ));
        };
        if self.get(name).is_some() {
            tracing::warn!(file = %section.file.display(), "A parser named `{name}` already exists: this one is skipped (as in Fluent Bit).");
            return;
        }
        // An empty value is no value (Fluent Bit's get_parser_key).
        let definition: Map<String, Value> = section
            .props
            .iter()
            .filter(|(_, v)| v.as_str() != Some(""))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let unusable = serde_json::from_value::<ParserConfig>(Value::Object(definition.clone()))
            .map_err(|e| e.to_string())
            .and_then(|config| Parser::new(&config).map(drop))
            .err()
            // The message names the key at fault; the section is the place.
            .map(|e| section.problem(ProblemKind::InvalidValue, "", e));
        self.defined.push(Defined {
            name: name.to_string(),
            definition,
            unusable,
        });
    }

    /// The definition named `name` (case-sensitive, as in Fluent Bit), or
    /// why wafer cannot use it, named at the parser's own section.
    pub(super) fn get(&self, name: &str) -> Option<Result<&Map<String, Value>, &Problem>> {
        self.defined
            .iter()
            .find(|d| d.name == name)
            .map(|d| match &d.unusable {
                None => Ok(&d.definition),
                Some(problem) => Err(problem),
            })
    }

    pub(super) fn names(&self) -> Option<String> {
        let names: Vec<&str> = self.defined.iter().map(|d| d.name.as_str()).collect();
        (!names.is_empty()).then(|| names.join(", "))
    }

    /// Reads the parsers of a `Parsers_File` (classic, or YAML by its
    /// extension), found as written, else beside the main config.
    pub(super) fn read_file(
        &mut self,
        main: &Path,
        service: &Section,
        file: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
        problems: &mut Vec<Problem>,
    ) {
        let path = locate(file, &folder(main));
        if !path.is_file() {
            return problems.push(service.problem(
                ProblemKind::Unreadable,
                "parsers_file",
                format!(
                    "{file}: no such file (looked in the working directory and beside {})",
                    main.display()
                ),
            ));
        }
        let mut document = Document::default();
        match super::is_classic(&path) {
            true => classic::read_root(&path, &mut document, problems),
            false => yaml::read_parsers(&path, &mut document, problems),
        }
        // Its own @SET lines are never run; the main config's variables
        // apply.
        expand_all(&mut document.sections, lookup);
        for section in document.sections.iter().filter(|s| s.kind == Kind::Parser) {
            self.add(section, problems);
        }
    }
}
