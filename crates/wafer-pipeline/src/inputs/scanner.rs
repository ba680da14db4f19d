//! How a byte stream splits into messages, as Benthos' `scanner` (and its
//! older `codec`) says: a message per line, or the whole stream as one.
//!
//! Lines are Benthos' `lines` scanner (Go's `bufio.Scanner`): every line is
//! a message, an empty one too; a line ends at `\n`, a `\r` before it is
//! dropped, and the last line needs no `\n`. With `custom_delimiter` a
//! line ends at that string instead (nothing dropped). A line longer than
//! `max_buffer_size` bytes, its delimiter included, fails the input, as
//! Benthos fails it, and is never held whole: reading stops at the limit.

use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use wafer::Message;

use crate::config::ComponentError;
use crate::inputs::MAX_BATCH;
use crate::{Sink, Stopped};

/// `max_buffer_size` of the `lines` scanner when it gives none: Go's
/// `bufio.MaxScanTokenSize`, as in Benthos.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 << 10;

/// The longest line of the older `codec: lines` (or `delim:X`) when the
/// input's `max_buffer` gives none: Benthos' default for that field.
pub const DEFAULT_CODEC_MAX_LINE_BYTES: usize = 1_000_000;

/// How a stream splits into messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanner {
    /// A message per line.
    Lines(Lines),
    /// The whole stream is one message.
    ToTheEnd,
}

/// How lines end, and how long one may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines {
    /// What ends a line; `None`: `\n`, with a `\r` before it dropped.
    delimiter: Option<Vec<u8>>,
    /// The most bytes a line may have, its delimiter included.
    max_bytes: usize,
    /// The field `max_bytes` came from, for the error naming it.
    limit_field: &'static str,
}

/// `scanner: {lines: {...}}`'s fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinesConfig {
    custom_delimiter: Option<String>,
    #[serde(default = "default_max_buffer_size")]
    max_buffer_size: usize,
}

fn default_max_buffer_size() -> usize {
    DEFAULT_MAX_LINE_BYTES
}

/// The scanner an input's `scanner` (`{lines: {...}}`, `{to_the_end: {}}`)
/// or older `codec` (`lines`, `delim:X`, `all-bytes`, with the input's
/// `max_buffer`) field chooses; lines by default. `max_buffer` matters
/// only with `codec`, as in Benthos.
pub fn choose(
    scanner: Option<&Value>,
    codec: Option<&str>,
    max_buffer: Option<usize>,
) -> Result<Scanner, ComponentError> {
    match (scanner, codec) {
        (Some(_), Some(_)) => Err(ComponentError::invalid(
            "codec",
            "give `scanner` or `codec`, not both",
        )),
        (Some(scanner), None) => from_scanner(scanner),
        (None, Some(codec)) => from_codec(codec, max_buffer),
        (None, None) => Ok(Scanner::Lines(Lines {
            delimiter: None,
            max_bytes: DEFAULT_MAX_LINE_BYTES,
            limit_field: "scanner.lines.max_buffer_size",
        })),
    }
}

/// `scanner: {lines: {...}}` or `scanner: {to_the_end: {}}`.
fn from_scanner(scanner: &Value) -> Result<Scanner, ComponentError> {
    let named = match scanner {
        Value::Object(map) if map.len() == 1 => map.iter().next(),
        _ => None,
    };
    let Some((name, body)) = named else {
        return Err(ComponentError::invalid(
            "scanner",
            "a scanner is a mapping with one key: `lines: {}` or `to_the_end: {}`",
        ));
    };
    let empty = || Value::Object(Default::default());
    match name.as_str() {
        "lines" => {
            let body = if body.is_null() {
                empty()
            } else {
                body.clone()
            };
            let parsed: LinesConfig = serde_path_to_error::deserialize(&body).map_err(|e| {
                let field = e.path().to_string();
                ComponentError::invalid(
                    &format!("scanner.lines.{field}"),
                    e.into_inner().to_string(),
                )
            })?;
            let delimiter = parsed
                .custom_delimiter
                .filter(|d| !d.is_empty())
                .map(String::into_bytes);
            let shortest = delimiter.as_ref().map_or(1, Vec::len);
            if parsed.max_buffer_size < shortest {
                return Err(ComponentError::invalid(
                    "scanner.lines.max_buffer_size",
                    format!("at least {shortest} (a line's delimiter must fit)"),
                ));
            }
            Ok(Scanner::Lines(Lines {
                delimiter,
                max_bytes: parsed.max_buffer_size,
                limit_field: "scanner.lines.max_buffer_size",
            }))
        }
        "to_the_end" if body.is_null() || *body == empty() => Ok(Scanner::ToTheEnd),
        "to_the_end" => Err(ComponentError::invalid(
            "scanner.to_the_end",
            "`to_the_end` takes no fields: `to_the_end: {}`",
        )),
        other => Err(ComponentError::invalid(
            "scanner",
            format!("wafer's scanners are `lines` and `to_the_end`, not `{other}`"),
        )),
    }
}

/// `codec: lines`, `codec: delim:X` or `codec: all-bytes`.
fn from_codec(codec: &str, max_buffer: Option<usize>) -> Result<Scanner, ComponentError> {
    let delimiter = match codec {
        "all-bytes" => return Ok(Scanner::ToTheEnd),
        "lines" => None,
        other => match other.strip_prefix("delim:") {
            Some(delimiter) if !delimiter.is_empty() => Some(delimiter.as_bytes().to_vec()),
            _ => {
                return Err(ComponentError::invalid(
                    "codec",
                    format!(
                        "wafer reads the codecs `lines`, `delim:X` and `all-bytes`, not `{other}`"
                    ),
                ));
            }
        },
    };
    let max_bytes = max_buffer.unwrap_or(DEFAULT_CODEC_MAX_LINE_BYTES);
    let shortest = delimiter.as_ref().map_or(1, Vec::len);
    if max_bytes < shortest {
        return Err(ComponentError::invalid(
            "max_buffer",
            format!("at least {shortest} (a line's delimiter must fit)"),
        ));
    }
    Ok(Scanner::Lines(Lines {
        delimiter,
        max_bytes,
        limit_field: "max_buffer",
    }))
}

impl Lines {
    /// The next line of `reader` without its delimiter; `None` at the end.
    /// Reads at most `max_bytes` of it.
    async fn next<R: AsyncRead + Unpin>(
        &self,
        reader: &mut BufReader<R>,
    ) -> std::io::Result<Option<Vec<u8>>> {
        let delimiter: &[u8] = self.delimiter.as_deref().unwrap_or(b"\n");
        let last = delimiter[delimiter.len() - 1];
        let mut line = Vec::new();
        loop {
            // Up to the delimiter's last byte (which may end the
            // delimiter or only look like its end), and never past the
            // limit.
            let room = (self.max_bytes - line.len()) as u64;
            let read = (&mut *reader)
                .take(room)
                .read_until(last, &mut line)
                .await?;
            if line.ends_with(delimiter) {
                line.truncate(line.len() - delimiter.len());
                return Ok(Some(self.trimmed(line)));
            }
            if line.len() >= self.max_bytes {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "longer than {} bytes, the limit `{}` sets (its delimiter included)",
                        self.max_bytes, self.limit_field
                    ),
                ));
            }
            if read == 0 || line.last() != Some(&last) {
                // The stream ended: its last line needs no delimiter, and
                // nothing after the last delimiter is no line.
                return Ok((!line.is_empty()).then(|| self.trimmed(line)));
            }
        }
    }

    /// `line` without the `\r` Go's `ScanLines` drops (for `\n` lines).
    fn trimmed(&self, mut line: Vec<u8>) -> Vec<u8> {
        if self.delimiter.is_none() && line.last() == Some(&b'\r') {
            line.pop();
        }
        line
    }
}

/// Reads `reader` to its end into `sink`, split by `scanner`, each message
/// made by `make`. Lines already buffered travel together, up to
/// [`MAX_BATCH`] per batch.
///
/// # Errors
///
/// A read failed, or a line was longer than its limit (the error says
/// which line and which field sets the limit); the lines before it were
/// sent.
pub async fn scan<R: AsyncRead + Unpin>(
    mut reader: BufReader<R>,
    scanner: &Scanner,
    sink: &mut Sink,
    make: impl Fn(Vec<u8>) -> Message,
) -> Result<Result<(), Stopped>, std::io::Error> {
    let lines = match scanner {
        Scanner::ToTheEnd => {
            let mut all = Vec::new();
            reader.read_to_end(&mut all).await?;
            return Ok(sink.send(vec![make(all)]).await);
        }
        Scanner::Lines(lines) => lines,
    };
    let mut batch = Vec::new();
    let mut number = 0u64;
    loop {
        number += 1;
        let line = match lines.next(&mut reader).await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                // What came before it is delivered, as Benthos delivers it.
                if !batch.is_empty() && sink.send(batch).await.is_err() {
                    return Ok(Err(Stopped));
                }
                return Err(std::io::Error::new(e.kind(), format!("line {number}: {e}")));
            }
        };
        batch.push(make(line));
        if (batch.len() >= MAX_BATCH || reader.buffer().is_empty())
            && let Err(stopped) = sink.send(std::mem::take(&mut batch)).await
        {
            return Ok(Err(stopped));
        }
    }
    if !batch.is_empty() {
        return Ok(sink.send(batch).await);
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The lines `scanner` splits `input` into, or the error that ended
    /// them.
    async fn split(scanner: Scanner, input: &[u8]) -> Result<Vec<String>, String> {
        let Scanner::Lines(lines) = scanner else {
            panic!("a lines scanner")
        };
        // A small buffer, so that delimiters straddle its refills.
        let mut reader = BufReader::with_capacity(3, input);
        let mut found = Vec::new();
        loop {
            match lines.next(&mut reader).await {
                Ok(Some(line)) => found.push(String::from_utf8(line).unwrap()),
                Ok(None) => return Ok(found),
                Err(e) => return Err(format!("after {found:?}: {e}")),
            }
        }
    }

    fn lines(body: Value) -> Scanner {
        choose(Some(&json!({"lines": body})), None, None).unwrap()
    }

    #[tokio::test]
    async fn lines_split_as_go_scans_them() {
        let default = || lines(json!({}));
        assert_eq!(
            split(default(), b"hello\n\nworld\r\n").await.unwrap(),
            ["hello", "", "world"]
        );
        assert_eq!(split(default(), b"a\r\nb").await.unwrap(), ["a", "b"]);
        assert_eq!(split(default(), b"a\n\n").await.unwrap(), ["a", ""]);
        assert_eq!(split(default(), b"\n").await.unwrap(), [""]);
        assert_eq!(split(default(), b"a\r").await.unwrap(), ["a"]);
        // A delimiter's last byte alone, at the end, is part of the line.
        let custom = lines(json!({"custom_delimiter": "XY"}));
        assert_eq!(split(custom, b"aY").await.unwrap(), ["aY"]);
        assert!(split(default(), b"").await.unwrap().is_empty());
        let custom = lines(json!({"custom_delimiter": "XY"}));
        assert_eq!(
            split(custom, b"firstXYsecondXYXYthirdXXY\r\nX")
                .await
                .unwrap(),
            ["first", "second", "", "thirdX", "\r\nX"]
        );
    }

    #[tokio::test]
    async fn a_line_over_the_limit_fails_with_the_field() {
        // Five bytes: four and the `\n`.
        let tight = || lines(json!({"max_buffer_size": 5}));
        assert_eq!(
            split(tight(), b"abcd\nefgh").await.unwrap(),
            ["abcd", "efgh"]
        );
        let error = split(tight(), b"abcd\nabcde\nx\n").await.unwrap_err();
        assert_eq!(
            error,
            r#"after ["abcd"]: longer than 5 bytes, the limit `scanner.lines.max_buffer_size` sets (its delimiter included)"#
        );
        let codec = choose(None, Some("lines"), Some(3)).unwrap();
        let error = split(codec, b"abc\n").await.unwrap_err();
        assert!(error.contains("`max_buffer`"), "{error}");
    }

    #[test]
    fn scanners_and_codecs_are_chosen_by_their_fields() {
        assert_eq!(
            choose(None, None, None).unwrap(),
            choose(Some(&json!({"lines": null})), None, Some(10)).unwrap()
        );
        assert_eq!(
            choose(Some(&json!({"to_the_end": {}})), None, None).unwrap(),
            Scanner::ToTheEnd
        );
        assert_eq!(
            choose(None, Some("all-bytes"), None).unwrap(),
            Scanner::ToTheEnd
        );
        let Scanner::Lines(codec) = choose(None, Some("delim:|"), None).unwrap() else {
            panic!("lines")
        };
        assert_eq!(codec.delimiter.as_deref(), Some(&b"|"[..]));
        assert_eq!(codec.max_bytes, DEFAULT_CODEC_MAX_LINE_BYTES);
        let refused = |scanner: Value| {
            choose(Some(&scanner), None, None)
                .map(|_| ())
                .unwrap_err()
                .field
        };
        assert_eq!(
            refused(json!({"lines": {"max_buffer": 1}})),
            "scanner.lines.max_buffer"
        );
        assert_eq!(
            refused(json!({"lines": {"max_buffer_size": 0}})),
            "scanner.lines.max_buffer_size"
        );
        assert_eq!(refused(json!({"csv": {}})), "scanner");
        assert_eq!(
            refused(json!({"to_the_end": {"x": 1}})),
            "scanner.to_the_end"
        );
    }
}
