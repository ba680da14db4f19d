//! The registry: entries declared in YAML, loaded from a file or a folder.
//!
//! Wippy's `_index.yaml` is the native format (a `version`, a dotted
//! `namespace`, a list of `entries`); Dapr component files of type
//! `bindings.wasm` are read too. Loading never stops at the first mistake:
//! [`Registry::problems`] holds every refused entry with its file, entry and
//! field, and the entries without problems are usable.
//!
//! What a folder walk reads: every `_index.yaml` (or `_index.yml`), and every
//! other `*.yaml`/`*.yml` whose top level is a Dapr component. Other YAML and
//! Dapr components of other types are listed in [`Registry::skipped`].
//! Hidden folders are not entered, nor symbolic links that lead outside the
//! folder (both listed in [`Registry::skipped`]); the walk goes at most
//! [`MAX_WALK_DEPTH`] folders deep and looks at [`MAX_WALK_ENTRIES`] files
//! and folders at most. A registry file may hold
//! [`MAX_REGISTRY_FILE_BYTES`](crate::files::MAX_REGISTRY_FILE_BYTES) and
//! expand (its YAML aliases replaced) to [`MAX_EXPANDED_BYTES`]; a key
//! written twice in one mapping is a problem, as YAML would keep only one.
//!
//! ```
//! let registry = wafer::Registry::from_yaml("inline.yaml", r#"
//! version: "1.0"
//! namespace: app
//! entries:
//!   - name: answer
//!     kind: function.wat
//!     source: '(module (func (export "answer") (result i32) i32.const 42))'
//!     wit: "answer: func() -> s32;"
//!     method: answer
//! "#);
//! assert!(registry.problems().is_empty());
//! assert!(registry.get("app:answer").is_some());
//! ```

mod config;
mod dapr;
mod entry;
mod fields;
mod http;
mod index_file;
mod module;
mod nats;
mod routes;
mod sandbox;
mod yaml;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub use config::*;
pub use entry::{Entry, EntryKind, PipelineEntry};
pub use http::{
    DEFAULT_HTTP_ADDR, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_MAX_REQUEST_MS, HttpEndpointConfig, HttpServiceConfig, RoutePath, RouteSegment,
};

pub use nats::NatsEndpointConfig;

use crate::error::{Problem, ProblemKind};
use crate::files::{Accept, MAX_REGISTRY_FILE_BYTES};
use fields::Findings;
pub use yaml::MAX_EXPANDED_BYTES;
use yaml::YamlError;

/// A file the walk read and left aside, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFile {
    /// The file.
    pub path: PathBuf,
    /// Why it holds no entries.
    pub reason: String,
}

/// Loaded registry entries, with every problem found on the way.
#[derive(Debug, Default)]
pub struct Registry {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    refused: BTreeMap<String, Vec<Problem>>,
    findings: Findings,
    skipped: Vec<SkippedFile>,
}

impl Registry {
    /// Loads a registry file, or every registry file under a folder.
    ///
    /// # Errors
    ///
    /// Only when `path` itself cannot be read; everything wrong inside the
    /// registry is reported by [`Registry::problems`].
    pub fn load(path: impl AsRef<Path>) -> Result<Registry, Problem> {
        let path = path.as_ref();
        let metadata = std::fs::metadata(path).map_err(|e| {
            Problem::new(
                ProblemKind::Unreadable,
                format!("cannot read registry: {e}"),
            )
            .in_file(path)
        })?;
        let mut loader = Loader::default();
        if metadata.is_dir() {
            loader.walk(path);
        } else {
            loader.read_file(path, true);
        }
        if loader.entries.is_empty() && loader.findings.problems.is_empty() {
            let message = if loader.registry_files == 0 {
                "no registry files here (expected _index.yaml or Dapr component files)"
            } else {
                "the registry files here declare no entries"
            };
            let problem = Problem::new(ProblemKind::Empty, message).in_file(path);
            loader.findings.problems.push(problem);
        }
        Ok(loader.finish())
    }

    /// Loads a registry from YAML text, as if read from `file_name` (relative
    /// paths inside start at the current directory). For tests and embedding.
    pub fn from_yaml(file_name: impl AsRef<Path>, text: &str) -> Registry {
        let mut loader = Loader::default();
        loader.read_text(file_name.as_ref(), text, true);
        loader.finish()
    }

    /// The `pipeline` entries, by id.
    pub fn pipelines(&self) -> impl Iterator<Item = (&Entry, &PipelineEntry)> {
        self.entries.iter().filter_map(|entry| match &entry.kind {
            EntryKind::Pipeline(pipeline) => Some((entry, pipeline)),
            _ => None,
        })
    }

    /// The entries that loaded without problems, sorted by id.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry with this id, if it loaded without problems.
    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.index.get(id).map(|&i| &self.entries[i])
    }

    /// Every problem: first those of each file, entry by entry, then those
    /// found across entries (duplicate ids, references to missing entries).
    pub fn problems(&self) -> &[Problem] {
        &self.findings.problems
    }

    /// The problems that refused the entry `id`, if it was refused.
    pub fn refusal(&self, id: &str) -> Option<&[Problem]> {
        self.refused.get(id).map(Vec::as_slice)
    }

    /// The names of the Dapr components, loaded or refused: the bindings
    /// Dapr's API knows (a refused one fails when invoked, saying why).
    pub fn dapr_bindings(&self) -> impl Iterator<Item = &str> {
        let loaded = self
            .entries
            .iter()
            .filter(|e| e.is_dapr())
            .map(|e| e.id.as_str());
        let refused = self
            .refused
            .keys()
            .map(String::as_str)
            .filter(|id| dapr::is_dns_label(id) && self.get(id).is_none());
        loaded.chain(refused)
    }

    /// Fields and kinds that are accepted but whose behaviour is not active
    /// yet, located like problems.
    pub fn inactive(&self) -> &[Problem] {
        &self.findings.inactive
    }

    /// The `fs.directory` entry `id`, or what is wrong with referring to
    /// it.
    pub(crate) fn directory(&self, id: &str) -> Result<&DirectoryConfig, String> {
        match self.get(id).map(|e| &e.kind) {
            Some(EntryKind::Directory(directory)) => Ok(directory),
            _ => Err(self.wrong_reference(id, "fs.directory")),
        }
    }

    /// The `env.variable` entry `id`, or what is wrong with referring to
    /// it.
    pub(crate) fn env_variable(&self, id: &str) -> Result<&EnvVariableConfig, String> {
        match self.get(id).map(|e| &e.kind) {
            Some(EntryKind::EnvVariable(variable)) => Ok(variable),
            _ => Err(self.wrong_reference(id, "env.variable")),
        }
    }

    fn wrong_reference(&self, id: &str, wanted: &str) -> String {
        wrong_reference(id, self.get(id), wanted).unwrap_or_default()
    }

    /// Files read and left aside.
    pub fn skipped(&self) -> &[SkippedFile] {
        &self.skipped
    }
}

/// How many folders deep a registry walk goes.
pub const MAX_WALK_DEPTH: usize = 16;

/// How many files and folders a registry walk looks at before it stops.
pub const MAX_WALK_ENTRIES: usize = 10_000;

#[derive(Default)]
struct Loader {
    entries: Vec<Entry>,
    /// Registry files and Dapr components read, entries or not.
    registry_files: usize,
    findings: Findings,
    skipped: Vec<SkippedFile>,
}

impl Loader {
    /// Reads the registry files under `root`, staying inside it: a
    /// symbolic link that leads out of the folder is skipped, and the walk
    /// stops at [`MAX_WALK_DEPTH`] folders deep and [`MAX_WALK_ENTRIES`]
    /// files and folders seen.
    fn walk(&mut self, root: &Path) {
        let inside = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let mut outside = Vec::new();
        // Counted here, so that what the filter leaves out counts too.
        let seen = std::cell::Cell::new(0usize);
        let walk = walkdir::WalkDir::new(root)
            .follow_links(true)
            .max_depth(MAX_WALK_DEPTH)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                seen.set(seen.get() + 1);
                if seen.get() > MAX_WALK_ENTRIES {
                    return false;
                }
                if e.depth() > 0 && e.file_name().to_string_lossy().starts_with('.') {
                    return false;
                }
                if !e.path_is_symlink() {
                    return true;
                }
                match std::fs::canonicalize(e.path()) {
                    Ok(target) if target.starts_with(&inside) => true,
                    Ok(target) => {
                        outside.push(SkippedFile {
                            path: e.path().to_path_buf(),
                            reason: format!(
                                "a symbolic link to {}, outside the registry folder",
                                target.display()
                            ),
                        });
                        false
                    }
                    Err(_) => true,
                }
            });
        for item in walk {
            if seen.get() > MAX_WALK_ENTRIES {
                break;
            }
            match item {
                Ok(item) if item.file_type().is_file() && is_yaml(item.path()) => {
                    let is_index = matches!(
                        item.file_name().to_str(),
                        Some("_index.yaml" | "_index.yml")
                    );
                    self.read_file(item.path(), is_index);
                }
                Ok(item) if item.depth() == MAX_WALK_DEPTH && item.file_type().is_dir() => {
                    self.skip(
                        item.path(),
                        format!("a folder deeper than {MAX_WALK_DEPTH} levels, not read"),
                    );
                }
                Ok(_) => {}
                Err(e) => self.findings.problems.push(
                    Problem::new(ProblemKind::Unreadable, format!("cannot read: {e}"))
                        .in_file(e.path().unwrap_or(root).to_path_buf()),
                ),
            }
        }
        self.skipped.append(&mut outside);
        if seen.get() > MAX_WALK_ENTRIES {
            let message = format!(
                "stopped after {MAX_WALK_ENTRIES} files and folders; point wafer at the folder that holds the registry"
            );
            let problem = Problem::new(ProblemKind::TooLarge, message).in_file(root);
            self.findings.problems.push(problem);
        }
    }

    fn read_file(&mut self, path: &Path, is_index: bool) {
        let bytes = match crate::files::read(path, MAX_REGISTRY_FILE_BYTES, Accept::RegularFile) {
            Ok(bytes) => bytes,
            Err(e) => {
                let problem = Problem::new(e.problem_kind(), e.reason()).in_file(path);
                return self.findings.problems.push(problem);
            }
        };
        match String::from_utf8(bytes) {
            Ok(text) => self.read_text(path, &text, is_index),
            Err(_) if !is_index => self.skip(path, "not UTF-8 text".into()),
            Err(_) => self
                .findings
                .problems
                .push(Problem::new(ProblemKind::Unreadable, "not UTF-8 text").in_file(path)),
        }
    }

    /// Reads one file's text. A file named on the command line or called
    /// `_index.yaml` must be a registry file; others are skipped unless they
    /// are Dapr components.
    fn read_text(&mut self, path: &Path, text: &str, is_index: bool) {
        let documents = match yaml::documents(text) {
            Ok(documents) => documents,
            Err(e) if is_index || !matches!(e, YamlError::Syntax(_)) => {
                let kind = match e {
                    YamlError::Syntax(_) => ProblemKind::Syntax,
                    YamlError::TooLarge | YamlError::TooDeep => ProblemKind::TooLarge,
                };
                let problem = Problem::new(kind, e.to_string()).in_file(path);
                self.findings.problems.push(problem);
                return;
            }
            Err(e) => return self.skip(path, e.to_string()),
        };
        if documents.is_empty() && is_index {
            let message = "empty: expected version, namespace and entries";
            let problem = Problem::new(ProblemKind::Empty, message).in_file(path);
            return self.findings.problems.push(problem);
        }
        for yaml::Document {
            value: document,
            duplicates,
        } in documents
        {
            if dapr::is_dapr_component(&document) {
                match dapr::component_type(&document) {
                    Some(dapr::WASM_BINDING) => {
                        self.registry_files += 1;
                        let entry =
                            dapr::parse_binding(path, &document, &duplicates, &mut self.findings);
                        self.entries.extend(entry);
                    }
                    other => self.skip(
                        path,
                        format!("Dapr component of type {}", other.unwrap_or("(none)")),
                    ),
                }
            } else if is_index {
                self.registry_files += 1;
                let entries =
                    index_file::parse_index_file(path, &document, &duplicates, &mut self.findings);
                self.entries.extend(entries);
            } else if document.get("entries").is_some() || document.get("namespace").is_some() {
                self.skip(
                    path,
                    "looks like a registry file, but only files named _index.yaml are read".into(),
                );
            } else {
                self.skip(path, "neither a registry file nor a Dapr component".into());
            }
        }
    }

    fn skip(&mut self, path: &Path, reason: String) {
        self.skipped.push(SkippedFile {
            path: path.to_path_buf(),
            reason,
        });
    }

    /// Cross-entry checks: duplicate ids and references to missing entries.
    /// A duplicate is reported and dropped; the first declaration stays.
    fn finish(mut self) -> Registry {
        // Each id once (a duplicate is refused below), first declaration first.
        let mut seen = std::collections::HashSet::new();
        let declared: Vec<String> = self
            .entries
            .iter()
            .filter(|e| seen.insert(e.id.as_str()))
            .map(|e| e.id.clone())
            .collect();
        let mut by_id: BTreeMap<String, Entry> = BTreeMap::new();
        for entry in self.entries {
            if let Some(first) = by_id.get(&entry.id) {
                let message = format!("duplicate id, first declared in {}", first.file.display());
                self.findings.problems.push(entry.problem(
                    ProblemKind::DuplicateId,
                    "name",
                    message,
                ));
            } else {
                by_id.insert(entry.id.clone(), entry);
            }
        }
        let mut refused: BTreeMap<String, Vec<Problem>> = BTreeMap::new();
        // Entries with problems of their own never reached `by_id`.
        for problem in &self.findings.problems {
            if let Some(id) = problem.entry.as_ref().filter(|id| !by_id.contains_key(*id)) {
                refused.entry(id.clone()).or_default().push(problem.clone());
            }
        }
        for entry in by_id.values() {
            let problems = dangling_references(entry, &by_id);
            if !problems.is_empty() {
                self.findings.problems.extend(problems.iter().cloned());
                refused.insert(entry.id.clone(), problems);
            }
        }
        let across = routes::route_problems(&by_id, &declared)
            .into_iter()
            .chain(nats::endpoint_problems(&by_id, &declared));
        for problem in across {
            let id = problem.entry.clone().unwrap_or_default();
            self.findings.problems.push(problem.clone());
            refused.entry(id).or_default().push(problem);
        }
        let mut registry = Registry {
            skipped: self.skipped,
            findings: self.findings,
            ..Registry::default()
        };
        for (id, entry) in by_id {
            if !refused.contains_key(&id) {
                registry.index.insert(id, registry.entries.len());
                registry.entries.push(entry);
            }
        }
        registry.refused = refused;
        registry
    }
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// Every reference from `entry` to an entry that is missing or of the
/// wrong kind.
fn dangling_references(entry: &Entry, by_id: &BTreeMap<String, Entry>) -> Vec<Problem> {
    let mut references: Vec<(String, &str, &str)> = Vec::new();
    match &entry.kind {
        EntryKind::Function(function) => {
            if let ModuleSource::FsPath { fs, .. } = &function.source {
                references.push(("fs".into(), fs, "fs.directory"));
            }
            for (i, env) in function.wasi.env.iter().enumerate() {
                references.push((format!("wasi.env[{i}].id"), &env.id, "env.variable"));
            }
            for (i, mount) in function.wasi.mounts.iter().enumerate() {
                references.push((format!("wasi.mounts[{i}].fs"), &mount.fs, "fs.directory"));
            }
        }
        EntryKind::HttpEndpoint(endpoint) => {
            references.push(("func".into(), &endpoint.func, "function"));
            if let Some(service) = &endpoint.service {
                references.push(("service".into(), service, "http.service"));
            }
        }
        EntryKind::NatsEndpoint(endpoint) => {
            references.push(("func".into(), &endpoint.func, "function"));
        }
        _ => {}
    }
    references
        .into_iter()
        .filter_map(|(field, target, wanted)| {
            let message = wrong_reference(target, by_id.get(target), wanted)?;
            Some(entry.problem(ProblemKind::Reference, field, message))
        })
        .collect()
}

/// What is wrong with a reference to `target` (found as `found`) where an
/// entry of kind `wanted` (`fs.directory`, `function`...) belongs; `None`
/// when nothing is. The one rule for every reference between entries.
fn wrong_reference(target: &str, found: Option<&Entry>, wanted: &str) -> Option<String> {
    match found {
        None => Some(format!("refers to {target}, which is not in the registry")),
        Some(found) if !found.kind_name().starts_with(wanted) => Some(format!(
            "refers to {target}, a {} entry; expected {wanted}",
            found.kind_name()
        )),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangling_and_duplicate_entries_are_refused_with_reasons() {
        let registry = Registry::from_yaml(
            "r.yaml",
            r#"
version: "1.0"
namespace: app
entries:
  - name: f
    kind: function.wasm
    fs: app:nowhere
    path: /f.wasm
    hash: sha256:0000000000000000000000000000000000000000000000000000000000000000
    method: run
  - name: dir
    kind: fs.directory
    directory: .
  - name: dir
    kind: fs.directory
    directory: ./src
"#,
        );
        let fields: Vec<_> = registry
            .problems()
            .iter()
            .map(|p| p.field.clone().unwrap())
            .collect();
        assert_eq!(fields, ["name", "fs"]);
        assert!(registry.get("app:f").is_none());
        assert!(
            registry.refusal("app:f").unwrap()[0]
                .message
                .contains("app:nowhere")
        );
        assert!(registry.get("app:dir").is_some());
    }
}
