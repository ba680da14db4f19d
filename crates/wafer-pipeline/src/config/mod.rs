//! A pipeline's configuration, shaped like a Benthos config:
//!
//! ```yaml
//! input:
//!   label: lines            # optional, on any component; unique
//!   stdin: {}
//!   processors: [...]       # optional
//! pipeline:
//!   threads: 2              # default: the number of cores
//!   ordered: true           # keep input order (default false)
//!   processors:
//!     - wasm: {module_path: ./upper.wasm, function: process}
//! output:
//!   stdout: {}
//!   processors: [...]       # optional
//! on_error: continue        # or drop, or {output: {...}}
//! ```
//!
//! Each component is a mapping with one key naming its type (and an
//! optional `label`: an empty one is none, as Benthos' default `""` is,
//! and two components of a pipeline cannot share one, as in Benthos);
//! what that type accepts is its own module's business
//! ([`crate::inputs`], [`crate::processors`], [`crate::outputs`]).
//! `${VAR}` and `${VAR:default}` are replaced first ([`env`]).

pub mod duration;
pub mod env;
pub mod interpolation;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use wafer::{Problem, ProblemKind};

/// The keys of a pipeline's top level.
pub const TOP_LEVEL: &[&str] = &["input", "pipeline", "output", "on_error"];

/// One component: its place in the config, its label, its type and the
/// type's own fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentConfig {
    /// Where it is: `pipeline.processors[0]`.
    pub path: String,
    /// Its `label`, if it has one that is not empty.
    pub label: Option<String>,
    /// Its type: `stdin`, `wasm`, `file`...
    pub kind: String,
    /// The type's fields.
    pub body: Value,
}

impl ComponentConfig {
    /// The label, or the place in the config: how logs and metrics name it.
    pub fn name(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.path)
    }

    /// The field path of one of its fields: `pipeline.processors[0].wasm.module_path`.
    pub fn field(&self, field: &str) -> String {
        if field.is_empty() || field == "." {
            format!("{}.{}", self.path, self.kind)
        } else {
            format!("{}.{}.{field}", self.path, self.kind)
        }
    }

    /// The type's fields as `T`; a field of the wrong type or an unknown
    /// one is an error naming it.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ComponentError> {
        let body = match &self.body {
            Value::Null => Value::Object(Map::new()),
            other => other.clone(),
        };
        serde_path_to_error::deserialize::<_, T>(&body).map_err(|e| {
            let field = e.path().to_string();
            let message = e.into_inner().to_string();
            let kind = if message.starts_with("unknown field") {
                ProblemKind::UnknownField
            } else if message.starts_with("missing field") {
                ProblemKind::MissingField
            } else {
                ProblemKind::InvalidValue
            };
            ComponentError::new(kind, &field, message)
        })
    }
}

/// What is wrong with a component: the field (inside its type's fields;
/// empty for the whole component) and why.
#[derive(Debug, Clone)]
pub struct ComponentError {
    /// The kind of problem.
    pub kind: ProblemKind,
    /// The field at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ComponentError {
    /// An error of `kind` with `field`.
    pub fn new(kind: ProblemKind, field: &str, message: impl Into<String>) -> Self {
        ComponentError {
            kind,
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// A value that is not acceptable.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ComponentError::new(ProblemKind::InvalidValue, field, message)
    }
}

/// What happens to a message a processor flagged with an error.
#[derive(Debug, Clone, PartialEq)]
pub enum OnError {
    /// It goes on to the output, flagged (Benthos' behaviour).
    Continue,
    /// It is dropped (counted, and acknowledged).
    Drop,
    /// It goes to this output instead (a dead letter).
    Output(Box<ComponentConfig>),
}

/// A whole pipeline, parsed but not built.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    /// Its name in logs, metrics and the summary: the registry entry's id,
    /// or the config file's name.
    pub name: String,
    /// Where it came from, for problems.
    pub file: PathBuf,
    /// The registry entry, when it is one.
    pub entry: Option<String>,
    /// What relative paths are relative to: the registry file's folder for
    /// an entry; `None` (the working directory, as in Benthos) for a file.
    pub base_dir: Option<PathBuf>,
    /// The input.
    pub input: ComponentConfig,
    /// `input.processors`.
    pub input_processors: Vec<ComponentConfig>,
    /// `pipeline.threads`: processing workers.
    pub threads: usize,
    /// `pipeline.ordered`: messages leave in the order they came.
    pub ordered: bool,
    /// `pipeline.processors`.
    pub processors: Vec<ComponentConfig>,
    /// The output.
    pub output: ComponentConfig,
    /// `output.processors`.
    pub output_processors: Vec<ComponentConfig>,
    /// `on_error`.
    pub on_error: OnError,
}

/// Collects a config's problems, each located in its file (and entry).
pub struct Problems {
    file: PathBuf,
    entry: Option<String>,
    found: Vec<Problem>,
}

impl Problems {
    /// Problems of the config in `file` (registry entry `entry`).
    pub fn new(file: &Path, entry: Option<&str>) -> Problems {
        Problems {
            file: file.to_path_buf(),
            entry: entry.map(str::to_string),
            found: Vec::new(),
        }
    }

    /// Records a problem of `kind` at `field`.
    pub fn add(&mut self, kind: ProblemKind, field: &str, message: impl Into<String>) {
        let mut problem = Problem::new(kind, message)
            .in_file(&self.file)
            .at_field(field);
        if let Some(entry) = &self.entry {
            problem = problem.in_entry(entry);
        }
        self.found.push(problem);
    }

    /// Records `error`, found in `component`.
    pub fn component(&mut self, component: &ComponentConfig, error: ComponentError) {
        let field = component.field(&error.field);
        self.add(error.kind, &field, error.message);
    }

    /// Whether none was found.
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The problems found.
    pub fn into_vec(self) -> Vec<Problem> {
        self.found
    }
}

/// Whether the file at `path` is a pipeline (a Benthos config: a mapping
/// with `input`, `output` or `pipeline`) rather than a registry file.
pub fn is_pipeline_file(path: &Path) -> bool {
    if !path.is_file() {
        return false;
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    match serde_norway::from_str::<Value>(&text) {
        Ok(Value::Object(top)) => {
            !top.contains_key("entries")
                && ["input", "output", "pipeline"]
                    .iter()
                    .any(|key| top.contains_key(*key))
        }
        _ => false,
    }
}

/// The most `pipeline.threads` a pipeline may have: each is a thread, and
/// each needs an instance of every `wasm` processor.
pub const MAX_THREADS: usize = 256;

/// The number of cores: `pipeline.threads` when it is not given.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl PipelineConfig {
    /// Reads a pipeline file (a Benthos config), `${VAR}` replaced from
    /// the environment.
    ///
    /// # Errors
    ///
    /// Every problem found: the file cannot be read or is not YAML, a
    /// variable is unset, a key or component is unknown or malformed.
    pub fn from_file(path: &Path) -> Result<PipelineConfig, Vec<Problem>> {
        let mut problems = Problems::new(path, None);
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                problems.add(ProblemKind::Unreadable, "", format!("cannot read it: {e}"));
                return Err(problems.into_vec());
            }
        };
        let value: Value = match serde_norway::from_str(&text) {
            Ok(value) => value,
            Err(e) => {
                problems.add(ProblemKind::Syntax, "", format!("not valid YAML: {e}"));
                return Err(problems.into_vec());
            }
        };
        let name = path.file_stem().map_or_else(
            || "pipeline".to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        Self::from_value(name, value, problems, None, true)
    }

    /// A registry entry's pipeline: `body` holds its `input`, `pipeline`,
    /// `output` and `on_error`.
    ///
    /// # Errors
    ///
    /// As [`PipelineConfig::from_file`].
    pub fn from_entry(id: &str, file: &Path, body: Value) -> Result<PipelineConfig, Vec<Problem>> {
        let base_dir = file.parent().map(Path::to_path_buf);
        Self::from_value(
            id.to_string(),
            body,
            Problems::new(file, Some(id)),
            base_dir,
            true,
        )
    }

    /// A pipeline translated from another config dialect (a Fluent Bit
    /// config, [`crate::fluentbit::config`]): `body` is Benthos-shaped with
    /// its variables already replaced (so `${…}` is left as it is); its
    /// problems are located in `file`; relative paths are relative to the
    /// working directory.
    ///
    /// # Errors
    ///
    /// As [`PipelineConfig::from_file`].
    pub fn from_translated(
        name: &str,
        file: &Path,
        body: Value,
    ) -> Result<PipelineConfig, Vec<Problem>> {
        let problems = Problems::new(file, None);
        Self::from_value(name.to_string(), body, problems, None, false)
    }

    fn from_value(
        name: String,
        mut value: Value,
        mut problems: Problems,
        base_dir: Option<PathBuf>,
        interpolate: bool,
    ) -> Result<PipelineConfig, Vec<Problem>> {
        let lookup = |name: &str| std::env::var(name).ok();
        let unset = match interpolate {
            true => env::interpolate(&mut value, &lookup),
            false => Vec::new(),
        };
        for variable in unset {
            problems.add(
                ProblemKind::MissingField,
                "",
                format!("environment variable {variable} is not set and has no default (write ${{{variable}:default}})"),
            );
        }
        let Value::Object(mut top) = value else {
            problems.add(
                ProblemKind::Syntax,
                "",
                "a pipeline is a mapping with `input`, `pipeline` and `output`",
            );
            return Err(problems.into_vec());
        };
        for key in top.keys() {
            if !TOP_LEVEL.contains(&key.as_str()) {
                problems.add(
                    ProblemKind::UnknownField,
                    key,
                    format!(
                        "wafer does not support `{key}` in a pipeline (supported: {})",
                        TOP_LEVEL.join(", ")
                    ),
                );
            }
        }
        let input = take_component(&mut top, "input", &mut problems, true);
        let output = take_component(&mut top, "output", &mut problems, true);
        let (threads, ordered, processors) =
            pipeline_section(top.remove("pipeline"), &mut problems);
        let on_error = on_error(top.remove("on_error"), &mut problems);
        let (Some((input, input_processors)), Some((output, output_processors))) = (input, output)
        else {
            return Err(problems.into_vec());
        };
        let dead_letter = match &on_error {
            OnError::Output(output) => Some(output.as_ref()),
            _ => None,
        };
        let components = std::iter::once(&input)
            .chain(&input_processors)
            .chain(&processors)
            .chain(std::iter::once(&output))
            .chain(&output_processors)
            .chain(dead_letter);
        refuse_shared_labels(components, &mut problems);
        if !problems.is_empty() {
            return Err(problems.into_vec());
        }
        Ok(PipelineConfig {
            name,
            file: problems.file,
            entry: problems.entry,
            base_dir,
            input,
            input_processors,
            threads,
            ordered,
            processors,
            output,
            output_processors,
            on_error,
        })
    }
}

/// `input` or `output`: the component and its own `processors`.
fn take_component(
    top: &mut Map<String, Value>,
    key: &str,
    problems: &mut Problems,
    with_processors: bool,
) -> Option<(ComponentConfig, Vec<ComponentConfig>)> {
    let Some(value) = top.remove(key) else {
        problems.add(ProblemKind::MissingField, key, "missing required field");
        return None;
    };
    component(key, value, problems, with_processors)
}

/// One component at `path`: a mapping with `label`, one type key and,
/// where allowed, `processors`.
fn component(
    path: &str,
    value: Value,
    problems: &mut Problems,
    with_processors: bool,
) -> Option<(ComponentConfig, Vec<ComponentConfig>)> {
    let Value::Object(mut map) = value else {
        problems.add(
            ProblemKind::InvalidValue,
            path,
            "a component is a mapping with one key naming its type, like `stdin: {}`",
        );
        return None;
    };
    let label = match map.remove("label") {
        None | Some(Value::Null) => None,
        // Benthos' default, written out by configs that list every field.
        Some(Value::String(label)) if label.is_empty() => None,
        Some(Value::String(label)) => Some(label),
        Some(_) => {
            problems.add(
                ProblemKind::InvalidValue,
                &format!("{path}.label"),
                "a label is a string",
            );
            None
        }
    };
    let processors = match map.remove("processors") {
        Some(list) if with_processors => {
            processor_list(&format!("{path}.processors"), list, problems)
        }
        Some(_) => {
            problems.add(
                ProblemKind::UnknownField,
                &format!("{path}.processors"),
                "this component takes no processors",
            );
            Vec::new()
        }
        None => Vec::new(),
    };
    let mut types = map.into_iter();
    let (kind, body) = match (types.next(), types.next()) {
        (Some(only), None) => only,
        (None, _) => {
            problems.add(
                ProblemKind::MissingField,
                path,
                "the component names no type (like `stdin: {}`)",
            );
            return None;
        }
        (Some((first, _)), Some((second, _))) => {
            problems.add(
                ProblemKind::InvalidValue,
                path,
                format!("a component has one type, this one has `{first}` and `{second}`"),
            );
            return None;
        }
    };
    Some((
        ComponentConfig {
            path: path.to_string(),
            label,
            kind,
            body,
        },
        processors,
    ))
}

/// A problem for each component whose label an earlier one has: a label
/// names one component in logs and metrics (and a `wasm` processor's
/// module in the runtime).
fn refuse_shared_labels<'a>(
    components: impl Iterator<Item = &'a ComponentConfig>,
    problems: &mut Problems,
) {
    let mut first: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for component in components {
        let Some(label) = component.label.as_deref() else {
            continue;
        };
        match first.get(label) {
            Some(earlier) => problems.add(
                ProblemKind::DuplicateId,
                &format!("{}.label", component.path),
                format!(
                    "label `{label}` collides with the label of {earlier}: a label names one component"
                ),
            ),
            None => {
                first.insert(label, &component.path);
            }
        }
    }
}

fn processor_list(path: &str, list: Value, problems: &mut Problems) -> Vec<ComponentConfig> {
    let Value::Array(items) = list else {
        problems.add(ProblemKind::InvalidValue, path, "processors are a list");
        return Vec::new();
    };
    items
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| component(&format!("{path}[{i}]"), item, problems, false))
        .map(|(processor, _)| processor)
        .collect()
}

/// `pipeline: {threads, ordered, processors}`.
fn pipeline_section(
    section: Option<Value>,
    problems: &mut Problems,
) -> (usize, bool, Vec<ComponentConfig>) {
    let mut threads = default_threads();
    let mut ordered = false;
    let mut processors = Vec::new();
    let Some(section) = section.filter(|v| !v.is_null()) else {
        return (threads, ordered, processors);
    };
    let Value::Object(map) = section else {
        problems.add(
            ProblemKind::InvalidValue,
            "pipeline",
            "`pipeline` is a mapping (threads, ordered, processors)",
        );
        return (threads, ordered, processors);
    };
    for (key, value) in map {
        match key.as_str() {
            // Benthos' -1 (and 0) mean "one per core".
            "threads" => match value.as_i64() {
                Some(n) if n > MAX_THREADS as i64 => problems.add(
                    ProblemKind::InvalidValue,
                    "pipeline.threads",
                    format!("at most {MAX_THREADS} threads"),
                ),
                Some(n) if n >= 1 => threads = n as usize,
                Some(_) => {}
                None => problems.add(
                    ProblemKind::InvalidValue,
                    "pipeline.threads",
                    "a whole number of threads",
                ),
            },
            "ordered" => match value.as_bool() {
                Some(b) => ordered = b,
                None => problems.add(
                    ProblemKind::InvalidValue,
                    "pipeline.ordered",
                    "true or false",
                ),
            },
            "processors" => processors = processor_list("pipeline.processors", value, problems),
            other => problems.add(
                ProblemKind::UnknownField,
                &format!("pipeline.{other}"),
                "unknown field for pipeline (known: threads, ordered, processors)",
            ),
        }
    }
    (threads, ordered, processors)
}

/// `on_error: continue | drop | {output: …}`.
fn on_error(value: Option<Value>, problems: &mut Problems) -> OnError {
    match value {
        None | Some(Value::Null) => OnError::Continue,
        Some(Value::String(policy)) if policy == "continue" => OnError::Continue,
        Some(Value::String(policy)) if policy == "drop" => OnError::Drop,
        Some(Value::Object(mut map)) if map.len() == 1 && map.contains_key("output") => {
            let output = map.remove("output").unwrap_or_default();
            match component("on_error.output", output, problems, false) {
                Some((output, _)) => OnError::Output(Box::new(output)),
                None => OnError::Continue,
            }
        }
        Some(_) => {
            problems.add(
                ProblemKind::InvalidValue,
                "on_error",
                "`continue`, `drop`, or `{output: …}` (a dead-letter output)",
            );
            OnError::Continue
        }
    }
}
