//! `fluentbit_file`: Fluent Bit's `file` output. Records are appended to
//! `path`/`file` (`file` defaults to the record's tag, made safe as a
//! relative path as Fluent Bit does: characters other than letters,
//! digits, `-`, `_` and `.` become `_`, a `.` or `..` segment `_`), one
//! write per batch per file; a file is opened (created if missing, its
//! folders too with `mkdir`) at its first record and kept open. A relative
//! `path` (or `file` without one) is relative to the working directory for
//! a pipeline file, to the registry's folder for a registry entry. A file
//! that cannot be opened rejects the batch's records bound for it (never
//! retried, as out_file's `FLB_ERROR`); a write that fails fails the
//! batch, which is retried as Fluent Bit retries it when the output has
//! `retry_limit` or a scheduler field ([`super::fluentbit_retry`]). A
//! batch whose records go to several files (several tags) is written
//! again whole when retried, into the files written before the failure
//! too.
//!
//! `format`, as out_file writes each record:
//!
//! * `out_file` (the default): `tag: [1700000000.123456789, {"k":"v"}]`;
//! * `plain`: the record's JSON;
//! * `csv`: the time and the values, `delimiter` (default `,`) between,
//!   with a header line first in an empty file when `csv_column_names`;
//! * `ltsv`: `"time":…` and `"key":value` pairs, `label_delimiter`
//!   (default `:`) inside a pair, `delimiter` (default tab) between;
//! * `template`: `template` (default `{time} {message}`) with each
//!   `{key}` replaced by the record's value;
//! * `msgpack`: the records as a Fluent Bit chunk holds them.
//!
//! A delimiter is written as Fluent Bit spells it: `tab` (or `\t`),
//! `space` or `comma`. Record accessors (`$key`) in `path` or `file`,
//! rotation and strftime placeholders are not supported.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::file::Appender;
use super::{Output, Rejected};
use crate::config::{ComponentConfig, ComponentError};
use crate::fluentbit::format::{Renderer, tag};
use crate::fluentbit::value;
use crate::{BoxFuture, BuildContext};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FluentBitFileConfig {
    #[serde(default, deserialize_with = "value::optional_text")]
    path: Option<String>,
    #[serde(default, deserialize_with = "value::optional_text")]
    file: Option<String>,
    #[serde(default, deserialize_with = "value::optional_text")]
    format: Option<String>,
    #[serde(default, deserialize_with = "value::optional_text")]
    delimiter: Option<String>,
    #[serde(default, deserialize_with = "value::optional_text")]
    label_delimiter: Option<String>,
    #[serde(default = "default_template", deserialize_with = "value::text")]
    template: String,
    #[serde(default, deserialize_with = "value::bool")]
    mkdir: bool,
    #[serde(default, deserialize_with = "value::bool")]
    csv_column_names: bool,
}

fn default_template() -> String {
    "{time} {message}".into()
}

/// How each record is written.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Layout {
    OutFile,
    Plain,
    Csv {
        delimiter: String,
        column_names: bool,
    },
    Ltsv {
        delimiter: String,
        label_delimiter: String,
    },
    Template(String),
    Msgpack,
}

/// A file and what a batch has for it.
struct Destination {
    file: Appender,
    buffer: Vec<u8>,
    /// A csv header is due before this batch's first record.
    header: bool,
}

struct FluentBitFile {
    layout: Layout,
    /// `path`, as the pipeline means it.
    folder: Option<PathBuf>,
    /// What a file without `path` is relative to (a registry entry's
    /// folder; the working directory for a pipeline file).
    base: Option<PathBuf>,
    /// `file`, when records do not go to their tag's file.
    file: Option<String>,
    mkdir: bool,
    renderer: Renderer,
    destinations: Vec<Destination>,
    /// Which destination a tag's records go to.
    by_tag: HashMap<String, usize>,
    /// The destinations this batch wrote to, in order.
    touched: Vec<usize>,
}

pub(super) fn build(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Output>, ComponentError> {
    let parsed: FluentBitFileConfig = config.parse()?;
    for (field, text) in [("path", &parsed.path), ("file", &parsed.file)] {
        if text.as_deref().is_some_and(|t| t.contains('$')) {
            return Err(ComponentError::invalid(
                field,
                "wafer does not support record accessors (`$key`) in out_file's path or file",
            ));
        }
    }
    // out_file's `check_delimiter` knows a few names; anything else keeps
    // the default, as there (with a warning here).
    let delimiter = |field: &str, text: &Option<String>, default: &str| match text {
        None => Ok::<_, ComponentError>(default.to_string()),
        Some(text) => Ok(match named_delimiter(text) {
            Some(named) => named.to_string(),
            None => {
                tracing::warn!(
                    pipeline = cx.pipeline,
                    "fluentbit_file {field} `{text}` is not tab, space or comma: the default is used, as in Fluent Bit"
                );
                default.to_string()
            }
        }),
    };
    let format = parsed.format.as_deref().unwrap_or("out_file");
    let layout = match format.to_ascii_lowercase().as_str() {
        "out_file" => Layout::OutFile,
        "plain" => Layout::Plain,
        "csv" => Layout::Csv {
            delimiter: delimiter("delimiter", &parsed.delimiter, ",")?,
            column_names: parsed.csv_column_names,
        },
        "ltsv" => Layout::Ltsv {
            delimiter: delimiter("delimiter", &parsed.delimiter, "\t")?,
            label_delimiter: delimiter("label_delimiter", &parsed.label_delimiter, ":")?,
        },
        "template" => Layout::Template(parsed.template),
        "msgpack" => Layout::Msgpack,
        _ => {
            return Err(ComponentError::invalid(
                "format",
                format!(
                    "`{format}` is not an out_file format (out_file, plain, csv, ltsv, template, msgpack)"
                ),
            ));
        }
    };
    Ok(Box::new(FluentBitFile {
        layout,
        folder: parsed.path.map(|p| cx.resolve(&p)),
        base: cx.base_dir.map(Path::to_path_buf),
        file: parsed.file,
        mkdir: parsed.mkdir,
        renderer: Renderer::new(),
        destinations: Vec::new(),
        by_tag: HashMap::new(),
        touched: Vec::new(),
    }))
}

/// Fluent Bit's `check_delimiter`.
fn named_delimiter(text: &str) -> Option<&'static str> {
    match text.to_ascii_lowercase().as_str() {
        "\\t" | "tab" => Some("\t"),
        "space" => Some(" "),
        "comma" => Some(","),
        _ => None,
    }
}

/// Fluent Bit's `sanitize_tag_name`: a tag as a safe relative path.
fn sanitize_tag(tag: &str) -> String {
    let mut out = String::with_capacity(tag.len());
    for segment in tag.split(['/', '\\']).filter(|s| !s.is_empty()) {
        if !out.is_empty() {
            out.push('/');
        }
        if segment == "." || segment == ".." {
            out.push('_');
            continue;
        }
        // Byte by byte, as C's isalnum sees them: a UTF-8 character is
        // one `_` per byte.
        for &b in segment.as_bytes() {
            let keep = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
            out.push(if keep { b as char } else { '_' });
        }
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

impl FluentBitFile {
    /// The destination of records tagged `tag`.
    fn destination(&mut self, tag: &str) -> usize {
        if let Some(&at) = self.by_tag.get(tag) {
            return at;
        }
        let name = match &self.file {
            Some(file) => file.clone(),
            None => sanitize_tag(tag),
        };
        let path = match (&self.folder, &self.base) {
            (Some(folder), _) | (None, Some(folder)) => folder.join(name),
            (None, None) => PathBuf::from(name),
        };
        // Two tags may make the same file name.
        let at = match self.destinations.iter().position(|d| d.file.path() == path) {
            Some(at) => at,
            None => {
                self.destinations.push(Destination {
                    file: Appender::new(path, self.mkdir),
                    buffer: Vec::new(),
                    header: false,
                });
                self.destinations.len() - 1
            }
        };
        self.by_tag.insert(tag.to_string(), at);
        at
    }

    fn render(&mut self, at: usize, message: &wafer::Message) {
        let destination = &mut self.destinations[at];
        let out = &mut destination.buffer;
        match &self.layout {
            Layout::OutFile => self.renderer.file_line(out, message),
            Layout::Plain => {
                self.renderer.json_body(out, message);
                out.push(b'\n');
            }
            Layout::Csv { delimiter, .. } => {
                let header = std::mem::take(&mut destination.header);
                self.renderer.csv(out, message, delimiter, header);
            }
            Layout::Ltsv {
                delimiter,
                label_delimiter,
            } => self.renderer.ltsv(out, message, delimiter, label_delimiter),
            Layout::Template(template) => self.renderer.template(out, message, template),
            Layout::Msgpack => self.renderer.msgpack(out, message),
        }
    }
}

impl Output for FluentBitFile {
    fn write<'a>(
        &'a mut self,
        batch: &'a [wafer::Message],
    ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
        Box::pin(async move {
            self.touched.clear();
            // A file that cannot be opened rejects its records (out_file's
            // FLB_ERROR: not retried); one that fails a write fails the
            // batch (retried).
            let mut unopened: Vec<(usize, String)> = Vec::new();
            let mut rejected = Vec::new();
            for (index, message) in batch.iter().enumerate() {
                let at = self.destination(tag(message));
                let unopened_at = |unopened: &[(usize, String)]| {
                    unopened.iter().position(|(failed, _)| *failed == at)
                };
                if !self.touched.contains(&at) && unopened_at(&unopened).is_none() {
                    let destination = &mut self.destinations[at];
                    destination.buffer.clear();
                    // csv's header goes first in a file that is empty
                    // when the batch comes, as out_file checks per chunk.
                    match destination.file.open().await {
                        Ok(len) => {
                            destination.header = matches!(
                                self.layout,
                                Layout::Csv {
                                    column_names: true,
                                    ..
                                }
                            ) && len == 0;
                            self.touched.push(at);
                        }
                        Err(error) => unopened.push((at, error)),
                    }
                }
                if let Some(failed) = unopened_at(&unopened) {
                    rejected.push(Rejected {
                        index,
                        error: unopened[failed].1.clone(),
                    });
                    continue;
                }
                self.render(at, message);
            }
            for &at in &self.touched {
                let destination = &mut self.destinations[at];
                if !destination.buffer.is_empty() {
                    destination.file.write(&destination.buffer).await?;
                }
            }
            Ok(rejected)
        })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let mut first_error = Ok(());
            for destination in &mut self.destinations {
                let synced = destination.file.sync().await;
                if first_error.is_ok() {
                    first_error = synced;
                }
            }
            first_error
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_become_safe_relative_paths_as_sanitize_tag_name_makes_them() {
        assert_eq!(sanitize_tag("dummy.0"), "dummy.0");
        assert_eq!(sanitize_tag("/var/log/../x y"), "var/log/_/x_y");
        assert_eq!(sanitize_tag("a\\b//c"), "a/b/c");
        assert_eq!(sanitize_tag(""), "_");
        assert_eq!(sanitize_tag("//"), "_");
        assert_eq!(sanitize_tag("é"), "__");
    }

    #[test]
    fn delimiters_are_fluent_bit_s_names() {
        assert_eq!(named_delimiter("TAB"), Some("\t"));
        assert_eq!(named_delimiter("\\t"), Some("\t"));
        assert_eq!(named_delimiter("space"), Some(" "));
        assert_eq!(named_delimiter("comma"), Some(","));
        assert_eq!(named_delimiter(";"), None);
    }
}
