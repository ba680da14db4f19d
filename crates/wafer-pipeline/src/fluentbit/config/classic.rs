//! The classic dialect, read line by line as `flb_cf_fluentbit.c` reads
//! it:
//!
//! * an empty line, or one starting with `#`, is skipped;
//! * `@INCLUDE path` reads another file in place: a glob (`*`) is relative
//!   to the first file's folder; a plain path is tried as written (from
//!   the working directory), then in that folder. A file read twice, or a
//!   glob that matches nothing, is a problem, as in Fluent Bit;
//! * `@SET KEY=VALUE` sets a variable (for every section, wherever it is);
//! * `[NAME]` opens a section (names are case-insensitive);
//! * the first indented line sets the file's indentation; every key line
//!   starts with exactly it (a key line with more indentation than that
//!   is a problem, except a group's keys, indented twice);
//! * `key value` splits at the first space; the key is lowercased, both
//!   are trimmed, and an empty value is a problem;
//! * an indented `[NAME]` opens a group inside the section.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use wafer::{Problem, ProblemKind};

use super::{Document, Kind, Place, Section, file_problem, folder, locate};

/// Fluent Bit stops after this many files (`FLB_CF_FILE_NUM_LIMIT`).
const MAX_FILES: usize = 1000;

/// Reads the classic config at `path` and what it includes into
/// `document`.
pub(super) fn read_root(path: &Path, document: &mut Document, problems: &mut Vec<Problem>) {
    // Fluent Bit's root path: the real folder of the first file.
    let root = path
        .canonicalize()
        .map(|real| folder(&real))
        .unwrap_or_else(|_| folder(path));
    let mut reader = Reader {
        root,
        seen: HashSet::new(),
    };
    reader.read(path, document, problems);
}

struct Reader {
    /// What includes are relative to.
    root: PathBuf,
    /// The files read so far (real paths).
    seen: HashSet<PathBuf>,
}

/// A file's reading state.
struct FileState {
    /// The indentation of its first indented line.
    indent: Option<String>,
    /// The section keys go to, an index into the document's sections.
    section: Option<usize>,
    /// Keys now go to a group of that section.
    in_group: bool,
}

impl Reader {
    /// Reads `path`; false when it could not be read (a problem says why).
    fn read(&mut self, path: &Path, document: &mut Document, problems: &mut Vec<Problem>) -> bool {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                problems.push(file_problem(
                    path,
                    ProblemKind::Unreadable,
                    format!("cannot read it: {e}"),
                ));
                return false;
            }
        };
        let real = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if !self.seen.insert(real) {
            problems.push(file_problem(
                path,
                ProblemKind::Syntax,
                "this file is read twice (an @INCLUDE loop?), which Fluent Bit refuses",
            ));
            return false;
        }
        if self.seen.len() > MAX_FILES {
            problems.push(file_problem(
                path,
                ProblemKind::TooLarge,
                format!("more than {MAX_FILES} config files, Fluent Bit's limit"),
            ));
            return false;
        }
        let mut state = FileState {
            indent: None,
            section: None,
            in_group: false,
        };
        for (index, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if !self.line(path, index + 1, line, &mut state, document, problems) {
                return false;
            }
        }
        true
    }

    /// Reads one line; false stops reading (a problem says why).
    fn line(
        &mut self,
        path: &Path,
        number: usize,
        line: &str,
        state: &mut FileState,
        document: &mut Document,
        problems: &mut Vec<Problem>,
    ) -> bool {
        let problem = |message: String| {
            Problem::new(ProblemKind::Syntax, message)
                .in_file(path)
                .at_field(format!("line {number}"))
        };
        // A line of blanks only is skipped too (Fluent Bit would take it
        // for the file's indentation).
        if line.trim().is_empty() || line.starts_with('#') {
            return true;
        }
        // Bytes, not a `str` slice: byte 9 may fall inside a character.
        if line.len() > 9 && line.as_bytes()[..9].eq_ignore_ascii_case(b"@include ") {
            return self.include(path, number, line[9..].trim(), document, problems);
        }
        if let Some(meta) = line.strip_prefix('@') {
            let Some((command, params)) = meta.split_once(' ') else {
                problems.push(problem(format!(
                    "`{line}` is not `@SET KEY=VALUE` or `@INCLUDE FILE`"
                )));
                return false;
            };
            if !command.eq_ignore_ascii_case("set") {
                tracing::warn!(file = %path.display(), line = number, "Fluent Bit ignores the command @{command}; so does wafer.");
                return true;
            }
            let Some((key, value)) = params.split_once('=') else {
                problems.push(problem(format!("`@SET {params}` is not `@SET KEY=VALUE`")));
                return false;
            };
            document
                .vars
                .push((key.trim().to_string(), value.trim().to_string()));
            return true;
        }
        if let Some(header) = line.strip_prefix('[') {
            let Some(end) = header.find(']').filter(|end| *end > 0) else {
                problems.push(problem(format!("bad section header `{line}`")));
                return false;
            };
            let header = header[..end].trim().to_string();
            document.sections.push(Section {
                kind: Kind::of_classic(&header),
                header,
                file: path.to_path_buf(),
                place: Place::Line(number),
                props: Vec::new(),
                groups: Vec::new(),
            });
            state.section = Some(document.sections.len() - 1);
            state.in_group = false;
            return true;
        }
        let blanks = |s: &str| s.len() - s.trim_start_matches([' ', '\t']).len();
        let indent = state
            .indent
            .get_or_insert_with(|| line[..blanks(line)].to_string());
        if indent.is_empty() {
            problems.push(problem(format!(
                "`{line}`: keys are indented under their section header"
            )));
            return false;
        }
        let Some(after) = line.strip_prefix(indent.as_str()) else {
            problems.push(problem(
                "indentation is lower than the file's first, or mixes tabs and spaces".into(),
            ));
            return false;
        };
        let extra = blanks(after);
        let rest = match extra {
            0 => {
                state.in_group = false;
                after
            }
            n if n == indent.len() => &after[n..],
            _ => {
                problems.push(problem(
                    "extra indentation: keys are indented as the file's first key".into(),
                ));
                return false;
            }
        };
        if rest.starts_with('#') {
            return true;
        }
        let Some(section) = state.section.map(|i| &mut document.sections[i]) else {
            problems.push(problem(format!("`{}` is outside any section", rest.trim())));
            return false;
        };
        if let Some(group) = rest.strip_prefix('[') {
            let Some(end) = group.find(']') else {
                problems.push(problem(format!("bad group header `{}`", rest.trim())));
                return false;
            };
            section.groups.push(group[..end].trim().to_string());
            state.in_group = true;
            return true;
        }
        let Some(space) = rest.find(' ') else {
            problems.push(problem(format!(
                "`{}` has no value (a key and its value are separated by a space)",
                rest.trim()
            )));
            return false;
        };
        let key = rest[..space].trim().to_ascii_lowercase();
        let value = rest[space + 1..].trim();
        if value.is_empty() {
            problems.push(problem(format!("key `{key}` has an empty value")));
            return false;
        }
        if !state.in_group {
            section.props.push((key, Value::String(value.to_string())));
        }
        true
    }

    /// `@INCLUDE pattern` on line `number` of `path`.
    fn include(
        &mut self,
        path: &Path,
        number: usize,
        pattern: &str,
        document: &mut Document,
        problems: &mut Vec<Problem>,
    ) -> bool {
        let problem = |message: String| {
            Problem::new(ProblemKind::Unreadable, message)
                .in_file(path)
                .at_field(format!("line {number}"))
        };
        if !pattern.contains('*') {
            let file = locate(pattern, &self.root);
            if !file.is_file() {
                problems.push(problem(format!(
                    "@INCLUDE {pattern}: no such file (looked in the working directory and in {})",
                    self.root.display()
                )));
                return false;
            }
            return self.read(&file, document, problems);
        }
        let full = match Path::new(pattern).is_absolute() {
            true => pattern.to_string(),
            false => self.root.join(pattern).to_string_lossy().into_owned(),
        };
        let mut files: Vec<PathBuf> = match glob::glob(&full) {
            Ok(found) => found.filter_map(Result::ok).collect(),
            Err(e) => {
                problems.push(problem(format!(
                    "@INCLUDE {pattern}: not a valid glob: {e}"
                )));
                return false;
            }
        };
        if files.is_empty() {
            problems.push(problem(format!(
                "@INCLUDE {pattern}: no file matches {full}"
            )));
            return false;
        }
        files.sort();
        files.iter().all(|file| self.read(file, document, problems))
    }
}
