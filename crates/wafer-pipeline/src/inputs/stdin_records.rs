//! `stdin_records`: Fluent Bit's `stdin` input (`plugins/in_stdin`): the
//! process's standard input as records, until it ends.
//!
//! * Without `parser`, a stream of JSON values (one per line or not): an
//!   object is a record made now; an array is Fluent Bit's event form,
//!   `[time, {record}]` or `[[time, {metadata}], {record}]`, time in
//!   seconds (a fraction allowed), the metadata's fields becoming the
//!   message's (text as it is, other values as JSON). Any other value is
//!   logged and skipped. Text that is not JSON is logged and dropped up to
//!   the end of the line it is on (Fluent Bit drops all it had read, which
//!   depends on how the bytes arrived).
//! * With `parser` (an inline definition, see [`crate::parsers`]), each
//!   line (without its `\n`) is parsed; the record's time is the one the
//!   parser found, else now. A line the parser refuses is logged and
//!   dropped.
//! * `buffer_size` (default and least 16000, as in Fluent Bit): the
//!   longest JSON value or line; a longer one fails the input (Fluent Bit
//!   stops there too).
//! * `tag` (default `stdin`).
//!
//! stdin is read through tokio's blocking pool, never on a worker.

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::Value;
use tokio::io::AsyncReadExt;
use wafer::{Message, Metadata};

use super::{Input, send_batched};
use crate::config::{ComponentConfig, ComponentError};
use crate::fluentbit::{TAG, value};
use crate::parsers::{Parser, ParserConfig};
use crate::{BoxFuture, BuildContext, Sink};

/// Fluent Bit's default and least `buffer_size`.
const MIN_BUFFER: u64 = 16000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StdinRecordsConfig {
    #[serde(default)]
    parser: Option<ParserConfig>,
    #[serde(default = "min_buffer", deserialize_with = "value::size")]
    buffer_size: u64,
    #[serde(default = "default_tag", deserialize_with = "value::text")]
    tag: String,
}

fn min_buffer() -> u64 {
    MIN_BUFFER
}

fn default_tag() -> String {
    "stdin".into()
}

struct StdinRecords {
    parser: Option<Parser>,
    buffer_size: usize,
    tag: String,
}

pub(super) fn build(
    config: &ComponentConfig,
    _: &BuildContext<'_>,
) -> Result<Box<dyn Input>, ComponentError> {
    let parsed: StdinRecordsConfig = config.parse()?;
    if parsed.buffer_size < MIN_BUFFER {
        return Err(ComponentError::invalid(
            "buffer_size",
            format!("at least {MIN_BUFFER} bytes, as in Fluent Bit"),
        ));
    }
    let parser = Parser::for_field(parsed.parser.as_ref())?;
    Ok(Box::new(StdinRecords {
        parser,
        buffer_size: usize::try_from(parsed.buffer_size).unwrap_or(usize::MAX),
        tag: parsed.tag,
    }))
}

/// What the bytes read so far gave.
#[derive(Default)]
struct Decoded {
    records: Vec<Message>,
    /// Bytes taken from the front of the buffer.
    consumed: usize,
}

impl StdinRecords {
    fn message(&self, body: Vec<u8>, timestamp: SystemTime, mut metadata: Metadata) -> Message {
        metadata.insert(TAG.to_string(), self.tag.clone());
        Message {
            bytes: body.into(),
            metadata,
            timestamp,
            error: None,
        }
    }

    /// The complete lines of `buf` (all of it at the end of input), parsed.
    fn lines(&self, parser: &Parser, buf: &[u8], at_end: bool) -> Decoded {
        let mut decoded = Decoded::default();
        let now = SystemTime::now();
        while decoded.consumed < buf.len() {
            let rest = &buf[decoded.consumed..];
            let (line, taken) = match rest.iter().position(|&b| b == b'\n') {
                Some(newline) => (&rest[..newline], newline + 1),
                None if at_end => (rest, rest.len()),
                None => break,
            };
            decoded.consumed += taken;
            match parser.parse_to_bytes(line) {
                Ok((body, time)) => {
                    decoded
                        .records
                        .push(self.message(body, time.unwrap_or(now), Metadata::new()))
                }
                Err(error) => tracing::warn!(
                    %error,
                    line = %String::from_utf8_lossy(line),
                    "stdin_records: the parser refused a line; it is dropped"
                ),
            }
        }
        decoded
    }

    /// The complete JSON values at the front of `buf`.
    fn values(&self, buf: &[u8], at_end: bool) -> Decoded {
        let mut decoded = Decoded::default();
        let now = SystemTime::now();
        loop {
            let rest = &buf[decoded.consumed..];
            let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<Value>();
            match stream.next() {
                None => {
                    decoded.consumed = buf.len();
                    return decoded;
                }
                Some(Ok(value)) => {
                    decoded.consumed += stream.byte_offset();
                    match self.event(value, now) {
                        Ok(record) => decoded.records.push(record),
                        Err(error) => {
                            tracing::warn!(%error, "stdin_records: a value is not a record; it is skipped")
                        }
                    }
                }
                Some(Err(error)) if error.is_eof() && !at_end => return decoded,
                Some(Err(error)) => {
                    // Drop through the end of the line the error is on.
                    let at = offset_of(rest, error.line(), error.column());
                    let skip = rest[at..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(rest.len(), |newline| at + newline + 1);
                    tracing::warn!(%error, "stdin_records: invalid JSON; dropped to the end of its line");
                    decoded.consumed += skip.max(1).min(rest.len());
                }
            }
        }
    }

    /// A JSON value as a record: an object, or Fluent Bit's event array.
    fn event(&self, value: Value, now: SystemTime) -> Result<Message, String> {
        match value {
            Value::Object(_) => {
                Ok(self.message(value.to_string().into_bytes(), now, Metadata::new()))
            }
            Value::Array(mut items) if items.len() == 2 => {
                let body = items.pop().unwrap_or_default();
                let head = items.pop().unwrap_or_default();
                if !body.is_object() {
                    return Err("the record of an event array is not an object".into());
                }
                let (time, metadata) = match head {
                    Value::Array(pair) if pair.len() == 2 => match (&pair[0], &pair[1]) {
                        (time, Value::Object(fields)) => (time.clone(), metadata_of(fields)),
                        _ => {
                            return Err("an event's [time, metadata] has no metadata object".into());
                        }
                    },
                    time => (time, Metadata::new()),
                };
                let time = event_time(&time).ok_or("an event's time is not a number of seconds")?;
                Ok(self.message(body.to_string().into_bytes(), time, metadata))
            }
            _ => Err("invalid record found, it's not a JSON map or array".into()),
        }
    }
}

fn metadata_of(fields: &serde_json::Map<String, Value>) -> Metadata {
    fields
        .iter()
        .map(|(key, value)| match value {
            Value::String(text) => (key.clone(), text.clone()),
            other => (key.clone(), other.to_string()),
        })
        .collect()
}

/// Seconds since the epoch, whole or with a fraction.
fn event_time(time: &Value) -> Option<SystemTime> {
    let seconds = time.as_f64().filter(|s| s.is_finite())?;
    let magnitude = Duration::try_from_secs_f64(seconds.abs()).ok()?;
    if seconds >= 0.0 {
        SystemTime::UNIX_EPOCH.checked_add(magnitude)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(magnitude)
    }
}

/// The byte offset of serde_json's (1-based) line and column in `text`.
fn offset_of(text: &[u8], line: usize, column: usize) -> usize {
    let line_start = text
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .nth(line.saturating_sub(2))
        .map_or(0, |(i, _)| i + 1);
    let start = if line <= 1 { 0 } else { line_start };
    (start + column.saturating_sub(1)).min(text.len())
}

impl Input for StdinRecords {
    fn run(self: Box<Self>, mut sink: Sink) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            let mut stdin = tokio::io::stdin();
            let mut buf: Vec<u8> = Vec::new();
            let mut chunk = vec![0u8; 64 << 10];
            loop {
                let read = stdin
                    .read(&mut chunk)
                    .await
                    .map_err(|e| format!("cannot read stdin: {e}"))?;
                let at_end = read == 0;
                buf.extend_from_slice(&chunk[..read]);
                let decoded = match &self.parser {
                    Some(parser) => self.lines(parser, &buf, at_end),
                    None => self.values(&buf, at_end),
                };
                buf.drain(..decoded.consumed);
                if !send_batched(&mut sink, decoded.records).await || at_end {
                    return Ok(());
                }
                if buf.len() >= self.buffer_size {
                    let what = if self.parser.is_some() {
                        "a line"
                    } else {
                        "a JSON value"
                    };
                    return Err(format!(
                        "{what} longer than buffer_size ({} bytes)",
                        self.buffer_size
                    ));
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(parser: Option<&str>) -> StdinRecords {
        StdinRecords {
            parser: parser.map(|yaml| Parser::new(&serde_norway::from_str(yaml).unwrap()).unwrap()),
            buffer_size: 16000,
            tag: "in".into(),
        }
    }

    fn bodies(decoded: &Decoded) -> Vec<String> {
        decoded
            .records
            .iter()
            .map(|m| String::from_utf8(m.bytes.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn json_values_become_records_and_partial_ones_wait() {
        let stdin = input(None);
        let text = br#"{"a":1} [1714979289.5, {"b":2}]
[[1714979289, {"m":"x","n":1}], {"c":3}] "skip me" {"d":"#;
        let decoded = stdin.values(text, false);
        assert_eq!(bodies(&decoded), [r#"{"a":1}"#, r#"{"b":2}"#, r#"{"c":3}"#]);
        assert_eq!(&text[decoded.consumed..], br#" {"d":"#);
        let event = &decoded.records[1];
        assert_eq!(
            event.timestamp,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_714_979_289_500)
        );
        assert_eq!(decoded.records[2].metadata["m"], "x");
        assert_eq!(decoded.records[2].metadata["n"], "1");
        assert_eq!(decoded.records[2].metadata[TAG], "in");
    }

    #[test]
    fn invalid_json_is_dropped_to_the_end_of_its_line() {
        let stdin = input(None);
        let text = b"{\"a\":1}\n{oops} {\"lost\":1}\n{\"b\":2}\n";
        let decoded = stdin.values(text, false);
        assert_eq!(bodies(&decoded), [r#"{"a":1}"#, r#"{"b":2}"#]);
        assert_eq!(decoded.consumed, text.len());
    }

    #[test]
    fn lines_go_through_the_parser() {
        let stdin = input(Some(
            "{format: regex, regex: '^(?<k>[a-z]+)=(?<v>.*)$', time_key: v, time_format: '%s', time_keep: on}",
        ));
        let decoded = stdin.lines(
            &stdin.parser.clone().unwrap(),
            b"a=1714979289\nBAD\nb=2\nc=",
            false,
        );
        assert_eq!(
            bodies(&decoded),
            [r#"{"k":"a","v":"1714979289"}"#, r#"{"k":"b","v":"2"}"#]
        );
        assert_eq!(
            decoded.records[0].timestamp,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_979_289)
        );
        assert_eq!(decoded.consumed, 21);
    }
}
