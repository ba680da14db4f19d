//! Fluent Bit's own config files, classic `.conf` and YAML, translated into
//! wafer pipelines, so that `wafer run fluent-bit.conf` runs what
//! `fluent-bit -c fluent-bit.conf` would.
//!
//! # Reading
//!
//! Both dialects are read into the same sections, as Fluent Bit's
//! `flb_cf` does (`src/config_format/`): keys lowercased (YAML's
//! `camelCase` first becomes `camel_case`), values as text.
//!
//! * classic (`classic.rs`): `[SECTION]` headers, keys indented by the
//!   file's first indentation, `key value` split at the first space, `#`
//!   comments, `@INCLUDE file` (a glob allowed) and `@SET KEY=VALUE`.
//! * YAML (`yaml.rs`): `service`, `pipeline: {inputs, filters, outputs}`,
//!   `parsers`, `includes` (relative to the including file) and `env`.
//!
//! # Translating
//!
//! `${VAR}` (and `${VAR:-default}`) in a value is replaced from the
//! `@SET` / `env` variables, then the environment; an unset one becomes
//! empty, with a warning, as in Fluent Bit. Then each input becomes one
//! pipeline (`translate.rs`):
//!
//! * named by the input's `Alias`, or `<plugin>.<N>` with N its index
//!   among all inputs (Fluent Bit's instance name, `dummy.0`); its `Tag`
//!   defaults to that name;
//! * its processors are the filters, in file order, whose `Match`
//!   (wildcards `*`) or `Match_Regex` matches the tag (`routing.rs`);
//! * its output is the one output that matches, a `broker` fanning out to
//!   each when several match, or `drop` (with a warning) when none does;
//! * a record a filter failed on is dropped (`on_error: drop`), as Fluent
//!   Bit drops it, and records keep their input order (`ordered: true`).
//!
//! Plugins: inputs `exec_wasi`, `dummy`, `stdin` (wafer's
//! `stdin_records`); filter `wasm` (`wasm_filter`); outputs `stdout`,
//! `file`, `http` (`fluentbit_*`) and `null` (`drop`). Any other is a
//! problem naming it. An input's `Parser` name is replaced by the parser's
//! definition, from `[PARSER]` sections, `Parsers_File` files or YAML
//! `parsers`.
//!
//! Relative paths in plugin fields (`WASI_Path`, `Path`) are relative to
//! the working directory, as in Fluent Bit.
//!
//! The `file` and `http` outputs retry a chunk as Fluent Bit's engine
//! does: the section's `Retry_Limit`, the `SERVICE`'s `scheduler.base`
//! and `scheduler.cap`.
//!
//! `SERVICE`: `Parsers_File` (several allowed) is read; keys with nothing
//! to do in wafer (`Flush`, `Grace`, `Log_Level`, `storage.*`...) are
//! ignored, as are unknown ones (with a warning, as Fluent Bit ignores
//! them); switches wafer lacks (`Daemon`, `HTTP_Server`, `Hot_Reload`)
//! are accepted only when off, and `Log_File`, `Streams_File` or a
//! `Plugins_File` that declares plugins are problems.
//!
//! # Where wafer differs
//!
//! * A classic main file may hold `[PARSER]` sections (Fluent Bit wants
//!   them in a `Parsers_File`); `[MULTILINE_PARSER]` is a problem there.
//! * A line of blanks is skipped (Fluent Bit would take it for the file's
//!   indentation and refuse the keys after it).
//! * Each input's pipeline has its own copy of the filters and outputs
//!   that match it: an output matched by two inputs is opened twice.

mod classic;
mod routing;
mod service;
mod translate;
mod yaml;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde_json::Value;
use wafer::{Problem, ProblemKind};

use crate::config::PipelineConfig;

/// What a Fluent Bit config file translated into.
#[derive(Debug, Default)]
pub struct Translation {
    /// One pipeline per input that translated without a problem, in the
    /// file's order.
    pub pipelines: Vec<PipelineConfig>,
    /// Every problem found, each naming its file, section and key.
    pub problems: Vec<Problem>,
}

/// Whether `path` is a Fluent Bit config: a `.conf` file, or a YAML file
/// whose top level has `service`, a `pipeline` with `inputs` or
/// `outputs`, or only Fluent Bit's sections (`includes`, `env`...). A
/// Benthos pipeline (`input`, `output`) or a registry file (`entries`) is
/// not.
pub fn is_fluentbit_file(path: &Path) -> bool {
    if !path.is_file() {
        return false;
    }
    // Any other extension is a pipeline's (`.json`) or nobody's: a classic
    // file goes by `.conf`, as Fluent Bit's own do.
    if path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("conf"))
    {
        return true;
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let Ok(Value::Object(top)) = serde_norway::from_str::<Value>(&text) else {
        return false;
    };
    let key = |name: &str| {
        top.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    if ["input", "output", "entries"]
        .iter()
        .any(|k| top.contains_key(*k))
    {
        return false;
    }
    let pipeline = matches!(key("pipeline"), Some(Value::Object(p))
        if p.keys().any(|k| k.eq_ignore_ascii_case("inputs") || k.eq_ignore_ascii_case("outputs")));
    pipeline || key("service").is_some() || key("includes").is_some()
}

/// Reads the Fluent Bit config at `path` (with what it includes and the
/// parsers files it names) and translates it into pipelines.
pub fn load(path: &Path) -> Translation {
    let mut problems = Vec::new();
    let mut document = Document::default();
    match is_classic(path) {
        true => classic::read_root(path, &mut document, &mut problems),
        false => yaml::read_root(path, &mut document, &mut problems),
    }
    if !problems.is_empty() {
        // A file that cannot be read stops Fluent Bit before it translates.
        return Translation {
            pipelines: Vec::new(),
            problems,
        };
    }
    translate::translate(path, document, problems)
}

/// Fluent Bit picks the dialect by the extension: `.yaml`/`.yml` is
/// YAML, anything else classic.
fn is_classic(path: &Path) -> bool {
    !path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml"))
}

/// What a section declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Service,
    Input,
    Filter,
    Output,
    Parser,
    MultilineParser,
    Custom,
    Plugins,
    StreamProcessor,
    /// Anything else (`[UPSTREAM]`, unknown names): Fluent Bit keeps and
    /// ignores it.
    Other,
}

impl Kind {
    /// The kind of a classic section header, case-insensitive.
    fn of_classic(name: &str) -> Kind {
        match name.trim().to_ascii_lowercase().as_str() {
            "service" => Kind::Service,
            "input" | "inputs" => Kind::Input,
            "filter" | "filters" => Kind::Filter,
            "output" | "outputs" => Kind::Output,
            "parser" => Kind::Parser,
            "multiline_parser" => Kind::MultilineParser,
            "custom" | "customs" => Kind::Custom,
            "plugins" => Kind::Plugins,
            "stream_processor" => Kind::StreamProcessor,
            _ => Kind::Other,
        }
    }
}

/// Where a section is written: a classic header's line, or a YAML path.
#[derive(Debug, Clone)]
enum Place {
    /// `[INPUT]` on this line.
    Line(usize),
    /// `pipeline.inputs[0]`.
    Yaml(String),
}

/// One section of a config, either dialect.
#[derive(Debug, Clone)]
struct Section {
    kind: Kind,
    /// Its header as written (`INPUT`, `inputs`).
    header: String,
    /// The file that declares it.
    file: PathBuf,
    place: Place,
    /// Keys (lowercase) and values, in order, repeats kept: a value is a
    /// string, or a list of strings (a YAML sequence).
    props: Vec<(String, Value)>,
    /// Nested groups or mappings (classic `[GROUP]`s, YAML
    /// `processors`): wafer has no use for them.
    groups: Vec<String>,
}

impl Section {
    /// The last value of `key`, as Fluent Bit's last `set_property` wins.
    fn get(&self, key: &str) -> Option<&Value> {
        self.props
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The last value of `key` as text (the last item of a list).
    fn text(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::String(s) => Some(s),
            Value::Array(items) => items.last().and_then(Value::as_str),
            _ => None,
        }
    }

    /// How a problem names the section: `[INPUT] at line 3`, or
    /// `pipeline.inputs[0]`; with the file's name when it is not `main`.
    fn place(&self, main: &Path) -> String {
        let place = match &self.place {
            Place::Line(line) => format!("[{}] at line {line}", self.header),
            Place::Yaml(path) => path.clone(),
        };
        if self.file == main {
            return place;
        }
        let file = self.file.file_name().unwrap_or(self.file.as_os_str());
        format!("{place} of {}", file.to_string_lossy())
    }

    /// How a problem names one of its keys.
    fn field(&self, key: &str) -> String {
        match &self.place {
            Place::Line(line) => format!("[{}] at line {line}, key {key}", self.header),
            Place::Yaml(path) => format!("{path}.{key}"),
        }
    }

    /// A problem about `key` (the whole section when empty), located in
    /// the section's own file.
    fn problem(&self, kind: ProblemKind, key: &str, message: impl Into<String>) -> Problem {
        let field = match key {
            "" => match &self.place {
                Place::Line(line) => format!("[{}] at line {line}", self.header),
                Place::Yaml(path) => path.clone(),
            },
            key => self.field(key),
        };
        Problem::new(kind, message)
            .in_file(&self.file)
            .at_field(field)
    }
}

/// A config as read: its sections (includes in place) and variables.
#[derive(Debug, Default)]
struct Document {
    sections: Vec<Section>,
    /// `@SET` and YAML `env` variables, in order (a later one wins).
    vars: Vec<(String, String)>,
}

/// A problem about a whole file, or a line of it.
fn file_problem(file: &Path, kind: ProblemKind, message: impl Into<String>) -> Problem {
    Problem::new(kind, message).in_file(file)
}

/// `path` as Fluent Bit finds a file a config names: as written (from the
/// working directory), else in `dir` (the config's folder).
fn locate(path: &str, dir: &Path) -> PathBuf {
    let written = PathBuf::from(path);
    if written.is_absolute() || written.exists() {
        return written;
    }
    dir.join(path)
}

/// The folder of `file`, for what it names relatively.
fn folder(file: &Path) -> PathBuf {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Replaces `${VAR}` and `${VAR:-default}` in `value` as Fluent Bit's
/// `flb_env_var_translate` does: `vars` first, then the environment (an
/// empty environment variable counts as unset); an unset variable
/// without a default becomes empty and is returned in `unset`.
fn expand(value: &str, vars: &dyn Fn(&str) -> Option<String>, unset: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let (Some(start), Some(end)) = (rest.find("${"), rest.find('}')) {
        if end <= start + 2 {
            break;
        }
        let reference = &rest[start + 2..end];
        let (name, default) = match reference.find(':') {
            Some(colon) if reference[colon + 1..].starts_with('-') => {
                (&reference[..colon], Some(&reference[colon + 2..]))
            }
            _ => (reference, None),
        };
        out.push_str(&rest[..start]);
        match (vars(name), default) {
            (Some(found), Some(default)) if found.is_empty() => out.push_str(default),
            (Some(found), _) => out.push_str(&found),
            (None, Some(default)) => out.push_str(default),
            (None, None) => unset.push(name.to_string()),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}
