//! Records rendered as Fluent Bit's outputs render them, byte for byte:
//!
//! * [`Renderer::print`]: `out_stdout`'s default (`msgpack`) line,
//!   `[N] tag: [[sec.nsec, {}], {"key"=>"value"}]`, as its
//!   `msgpack_object_print` writes it (strings in quotes but not
//!   escaped, floats `%f`, `nil`, `=>` between key and value);
//! * [`Renderer::chunk`]: `flb_pack_msgpack_to_json_format`, the
//!   `json`, `json_lines` and `json_stream` formats of `out_stdout` and
//!   `out_http`, with their date key ([`JsonDate`]), or the records in
//!   MessagePack (`out_http`'s `msgpack`);
//! * [`Renderer::json_body`]: `flb_msgpack_to_json_str`, a record's body
//!   alone (`out_file`'s `plain` format and the JSON of its default one);
//! * [`Renderer::csv`], [`Renderer::ltsv`], [`Renderer::template`]:
//!   `out_file`'s other formats;
//! * [`Renderer::msgpack`]: the record as a Fluent Bit chunk holds it,
//!   `[[time, {}], {record}]` in MessagePack, the time an `EventTime`
//!   (ext type 0).
//!
//! As Fluent Bit's JSON does, these drop a key a later key of the same
//! map repeats (the last one wins, in its place), escape every non-ASCII
//! character as `\uXXXX` (its default `json.escape_unicode`) and write a
//! float as `%.16g` (`%.1f` when whole). A number is an integer when
//! JSON writes it without a fraction or exponent and it fits 64 bits, a
//! float otherwise, as Fluent Bit packs JSON.
//!
//! A body that is not a JSON object (a Benthos input's line of text, say)
//! is rendered as the record `{"log": "<its text>"}`, the key Fluent Bit's
//! inputs give a raw line.
//!
//! Rendering appends to a buffer the caller reuses; what a record needs
//! beyond that (the spans of the keys being checked for repeats) lives in
//! the [`Renderer`] and is reused too.

mod walk;

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{Datelike, Timelike};
use wafer::Message;

use super::TAG;
use walk::{Entry, Walk};

/// A format of `out_stdout` and `out_http`: `msgpack` (stdout's printed
/// lines, http's MessagePack body), `json`, `json_lines`, `json_stream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `msgpack`.
    Msgpack,
    /// `json`: one JSON array of the records.
    Json,
    /// `json_lines`: a JSON object per record, each followed by `\n`.
    JsonLines,
    /// `json_stream`: the JSON objects one after another.
    JsonStream,
}

impl Format {
    /// Fluent Bit's spelling (`flb_pack_to_json_format_type`, any case).
    ///
    /// # Errors
    ///
    /// Another spelling: the error lists the known ones.
    pub fn parse(text: &str) -> Result<Format, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "msgpack" => Ok(Format::Msgpack),
            "json" => Ok(Format::Json),
            "json_lines" => Ok(Format::JsonLines),
            "json_stream" => Ok(Format::JsonStream),
            _ => Err(format!(
                "`{text}` is not a format wafer writes (msgpack, json, json_lines, json_stream)"
            )),
        }
    }
}

/// How the JSON formats write a record's time (`json_date_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateFormat {
    /// `double`: seconds as a float, `1700000000.123457`.
    Double,
    /// `epoch`: whole seconds.
    Epoch,
    /// `epoch_ms` (or `epoch_millis`, `epoch_milliseconds`): milliseconds.
    EpochMs,
    /// `iso8601`: `2023-11-14T22:13:20.123456Z`.
    Iso8601,
    /// `java_sql_timestamp`: `2023-11-14 22:13:20.123456`.
    JavaSqlTimestamp,
}

impl DateFormat {
    /// Fluent Bit's spelling (`flb_pack_to_json_date_type`, any case).
    ///
    /// # Errors
    ///
    /// Another spelling: the error lists the known ones.
    pub fn parse(text: &str) -> Result<DateFormat, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "double" => Ok(DateFormat::Double),
            "epoch" => Ok(DateFormat::Epoch),
            "epoch_ms" | "epoch_millis" | "epoch_milliseconds" => Ok(DateFormat::EpochMs),
            "iso8601" => Ok(DateFormat::Iso8601),
            "java_sql_timestamp" => Ok(DateFormat::JavaSqlTimestamp),
            _ => Err(format!(
                "`{text}` is not a date format (double, epoch, epoch_ms, iso8601, java_sql_timestamp)"
            )),
        }
    }
}

/// The date key the JSON formats put first in each record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonDate {
    /// The key (`json_date_key`, default `date`); `None` when a config
    /// turned it off (`json_date_key: false`, `off` or `no`).
    pub key: Option<String>,
    /// How the time is written (`json_date_format`, default `double`).
    pub format: DateFormat,
}

impl Default for JsonDate {
    fn default() -> Self {
        JsonDate {
            key: Some("date".into()),
            format: DateFormat::Double,
        }
    }
}

impl JsonDate {
    /// From the `json_date_key` and `json_date_format` fields as written.
    ///
    /// # Errors
    ///
    /// An unknown date format.
    pub fn from_fields(key: Option<&str>, format: Option<&str>) -> Result<JsonDate, String> {
        // Fluent Bit reads the key as a bool only to turn it off.
        let key = match key {
            None => Some("date".to_string()),
            Some(key) if super::value::parse_bool(key) == Ok(false) => None,
            Some(key) => Some(key.to_string()),
        };
        let format = match format {
            None => DateFormat::Double,
            Some(format) => DateFormat::parse(format)?,
        };
        Ok(JsonDate { key, format })
    }
}

/// A record's tag: its [`TAG`] metadata, empty without it.
pub fn tag(message: &Message) -> &str {
    message.metadata.get(TAG).map_or("", String::as_str)
}

/// `time` as Fluent Bit's `flb_time`: seconds since the epoch and the
/// nanoseconds within that second (always below 10⁹; before the epoch the
/// seconds are negative).
pub fn event_time(time: SystemTime) -> (i64, u32) {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => (after.as_secs() as i64, after.subsec_nanos()),
        Err(before) => {
            let before = before.duration();
            match before.subsec_nanos() {
                0 => (-(before.as_secs() as i64), 0),
                nanos => (-(before.as_secs() as i64) - 1, 1_000_000_000 - nanos),
            }
        }
    }
}

/// Renders records; holds what rendering reuses from one record to the
/// next. One per output.
#[derive(Debug, Default)]
pub struct Renderer {
    /// Key spans of the maps being written, for dropping repeated keys.
    keys: Vec<(usize, usize)>,
    /// The `{"log": ...}` record of a body that is not a JSON object.
    fallback: Vec<u8>,
    /// The top-level entries of a record, for csv, ltsv and template.
    entries: Vec<Entry>,
    /// The keys and printed values `entries` points into.
    scratch: Vec<u8>,
}

impl Renderer {
    /// A renderer with nothing reused yet.
    pub fn new() -> Renderer {
        Renderer::default()
    }

    /// `out_stdout`'s line for the `index`th record of a batch:
    /// `[0] dummy.0: [[1700000000.123456789, {}], {"message"=>"dummy"}]`
    /// and a newline.
    pub fn print(&mut self, out: &mut Vec<u8>, index: usize, message: &Message) {
        let (sec, nsec) = event_time(message.timestamp);
        let _ = write!(out, "[{index}] ");
        out.extend_from_slice(tag(message).as_bytes());
        let _ = write!(out, ": [[{sec}.{nsec:09}, {{}}], ");
        self.body(out, message, |walk, out, body| walk.print(out, body));
        out.extend_from_slice(b"]\n");
    }

    /// The records of `batch` as `out_http` sends a chunk: `msgpack` the
    /// records as the chunk holds them ([`Renderer::msgpack`], one after
    /// another); the JSON formats as `flb_pack_msgpack_to_json_format`
    /// writes them: `json` one array (no newline), `json_lines` each
    /// record and a newline, `json_stream` the records one after another,
    /// each record starting with the date key when there is one. Nothing
    /// for an empty batch.
    pub fn chunk(&mut self, out: &mut Vec<u8>, format: Format, date: &JsonDate, batch: &[Message]) {
        if batch.is_empty() {
            return;
        }
        if format == Format::Json {
            out.push(b'[');
        }
        for (i, message) in batch.iter().enumerate() {
            if format == Format::Msgpack {
                self.msgpack(out, message);
                continue;
            }
            if format == Format::Json && i > 0 {
                out.push(b',');
            }
            let stamp = date
                .key
                .as_deref()
                .map(|key| (key, date.format, event_time(message.timestamp)));
            self.body(out, message, |walk, out, body| walk.json(out, body, stamp));
            if format == Format::JsonLines {
                out.push(b'\n');
            }
        }
        if format == Format::Json {
            out.push(b']');
        }
    }

    /// The record's body as JSON (`flb_msgpack_to_json_str`), no newline.
    pub fn json_body(&mut self, out: &mut Vec<u8>, message: &Message) {
        self.body(out, message, |walk, out, body| walk.json(out, body, None));
    }

    /// `out_file`'s default line: `tag: [1700000000.123456789, {"k":"v"}]`
    /// and a newline.
    pub fn file_line(&mut self, out: &mut Vec<u8>, message: &Message) {
        let (sec, nsec) = event_time(message.timestamp);
        out.extend_from_slice(tag(message).as_bytes());
        let _ = write!(out, ": [{sec}.{nsec:09}, ");
        self.json_body(out, message);
        out.extend_from_slice(b"]\n");
    }

    /// `out_file`'s `csv` line: the time (`sec.nsec`), then each value as
    /// `out_stdout` prints it (strings quoted), `delimiter` between, a
    /// newline after; first the header line (`timestamp` and each key,
    /// quoted) when `column_names`. Nothing for an empty record.
    pub fn csv(
        &mut self,
        out: &mut Vec<u8>,
        message: &Message,
        delimiter: &str,
        column_names: bool,
    ) {
        self.collect_entries(message);
        if self.entries.is_empty() {
            return;
        }
        let d = delimiter.as_bytes();
        if column_names {
            out.extend_from_slice(b"timestamp");
            for entry in &self.entries {
                out.extend_from_slice(d);
                out.push(b'"');
                out.extend_from_slice(&self.scratch[entry.key.clone()]);
                out.push(b'"');
            }
            out.push(b'\n');
        }
        let (sec, nsec) = event_time(message.timestamp);
        let _ = write!(out, "{sec}.{nsec:09}");
        for entry in &self.entries {
            out.extend_from_slice(d);
            out.extend_from_slice(&self.scratch[entry.value.clone()]);
        }
        out.push(b'\n');
    }

    /// `out_file`'s `ltsv` line: `"time"`, the time as `%f`, then each
    /// `"key"` and value as `out_stdout` prints them, `label_delimiter`
    /// inside a pair, `delimiter` between pairs, a newline after. Nothing
    /// for an empty record.
    pub fn ltsv(
        &mut self,
        out: &mut Vec<u8>,
        message: &Message,
        delimiter: &str,
        label_delimiter: &str,
    ) {
        self.collect_entries(message);
        if self.entries.is_empty() {
            return;
        }
        out.extend_from_slice(b"\"time\"");
        out.extend_from_slice(label_delimiter.as_bytes());
        write_fixed6(out, seconds(message));
        for entry in &self.entries {
            out.extend_from_slice(delimiter.as_bytes());
            out.push(b'"');
            out.extend_from_slice(&self.scratch[entry.key.clone()]);
            out.push(b'"');
            out.extend_from_slice(label_delimiter.as_bytes());
            out.extend_from_slice(&self.scratch[entry.value.clone()]);
        }
        out.push(b'\n');
    }

    /// `out_file`'s `template` line: `template` with each `{key}` replaced
    /// by the record's value (a string as it is, another value as
    /// `out_stdout` prints it) and `{time}` by the time as `%f`, a newline
    /// after. A placeholder naming no key stays as written. As in Fluent
    /// Bit, the time is what any prefix of `time` names (even `{}`), and
    /// an inner `{` restarts the placeholder (`{a{b}`: `{a` is text).
    pub fn template(&mut self, out: &mut Vec<u8>, message: &Message, template: &str) {
        self.collect_entries(message);
        let template = template.as_bytes();
        let mut open: Option<usize> = None;
        for (i, &byte) in template.iter().enumerate() {
            match (byte, open) {
                (b'{', Some(start)) => {
                    out.extend_from_slice(&template[start..i]);
                    open = Some(i);
                }
                (b'{', None) => open = Some(i),
                (b'}', Some(start)) => {
                    let key = &template[start + 1..i];
                    if !self.placeholder(out, message, key) {
                        out.extend_from_slice(&template[start..=i]);
                    }
                    open = None;
                }
                (_, Some(_)) => {}
                (_, None) => out.push(byte),
            }
        }
        if let Some(start) = open {
            out.extend_from_slice(&template[start..]);
        }
        out.push(b'\n');
    }

    /// One placeholder's value; `false` when nothing fills it.
    fn placeholder(&self, out: &mut Vec<u8>, message: &Message, key: &[u8]) -> bool {
        // Fluent Bit compares with strncmp(key, "time", len(key)).
        if key.len() <= 4 && b"time".starts_with(key) {
            write_fixed6(out, seconds(message));
            return true;
        }
        let Some(entry) = self
            .entries
            .iter()
            .find(|entry| &self.scratch[entry.key.clone()] == key)
        else {
            return false;
        };
        let value = &self.scratch[entry.value.clone()];
        if entry.text {
            out.extend_from_slice(&value[1..value.len() - 1]);
        } else {
            out.extend_from_slice(value);
        }
        true
    }

    /// The record as a Fluent Bit chunk holds it: MessagePack
    /// `[[EventTime, {}], {record}]`.
    pub fn msgpack(&mut self, out: &mut Vec<u8>, message: &Message) {
        let (sec, nsec) = event_time(message.timestamp);
        // fixarray 2, fixarray 2, fixext 8 of type 0 (EventTime).
        out.extend_from_slice(&[0x92, 0x92, 0xd7, 0x00]);
        out.extend_from_slice(&(sec as u32).to_be_bytes());
        out.extend_from_slice(&nsec.to_be_bytes());
        // The empty metadata map.
        out.push(0x80);
        self.body(out, message, |walk, out, body| walk.msgpack(out, body));
    }

    /// The top-level keys and printed values of `message`, into
    /// `entries` and `scratch`.
    fn collect_entries(&mut self, message: &Message) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut entries = std::mem::take(&mut self.entries);
        scratch.clear();
        entries.clear();
        self.body(&mut scratch, message, |walk, scratch, body| {
            // A second try (the `log` record) starts over.
            entries.clear();
            walk.entries(scratch, body, &mut entries)
        });
        self.scratch = scratch;
        self.entries = entries;
    }

    /// Renders `message`'s body with `render`; a body that is not a JSON
    /// object is rendered as `{"log": "<its text>"}`.
    fn body(
        &mut self,
        out: &mut Vec<u8>,
        message: &Message,
        mut render: impl FnMut(&mut Walk<'_>, &mut Vec<u8>, &[u8]) -> Result<(), serde_json::Error>,
    ) {
        let start = out.len();
        let bytes = &message.bytes[..];
        let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if object {
            let mut walk = Walk::new(&mut self.keys);
            if render(&mut walk, out, bytes).is_ok() {
                return;
            }
            out.truncate(start);
        }
        let mut fallback = std::mem::take(&mut self.fallback);
        fallback.clear();
        fallback.extend_from_slice(b"{\"log\":");
        let text = String::from_utf8_lossy(bytes);
        serde_json::to_writer(&mut fallback, text.as_ref()).expect("a string always serializes");
        fallback.push(b'}');
        let mut walk = Walk::new(&mut self.keys);
        render(&mut walk, out, &fallback).expect("the fallback record is a JSON object");
        self.fallback = fallback;
    }
}

/// The record's time as Fluent Bit's `flb_time_to_double`.
fn seconds(message: &Message) -> f64 {
    let (sec, nsec) = event_time(message.timestamp);
    sec as f64 + f64::from(nsec) / 1e9
}

/// The date key's value, as JSON.
fn write_date(out: &mut Vec<u8>, format: DateFormat, (sec, nsec): (i64, u32)) {
    match format {
        DateFormat::Double => write_json_float(out, sec as f64 + f64::from(nsec) / 1e9),
        DateFormat::Epoch => {
            let _ = write!(out, "{sec}");
        }
        DateFormat::EpochMs => {
            let _ = write!(
                out,
                "{}",
                sec.saturating_mul(1000)
                    .saturating_add(i64::from(nsec / 1_000_000))
            );
        }
        DateFormat::Iso8601 | DateFormat::JavaSqlTimestamp => {
            let separator = if format == DateFormat::Iso8601 {
                'T'
            } else {
                ' '
            };
            let zone = if format == DateFormat::Iso8601 {
                "Z"
            } else {
                ""
            };
            let Some(t) = chrono::DateTime::from_timestamp(sec, 0) else {
                out.extend_from_slice(b"null");
                return;
            };
            let _ = write!(
                out,
                "\"{}-{:02}-{:02}{separator}{:02}:{:02}:{:02}.{:06}{zone}\"",
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                nsec / 1000
            );
        }
    }
}

/// A float as Fluent Bit's JSON writes it: `%.1f` when it is whole (and
/// within `long long`), `%.16g` otherwise.
fn write_json_float(out: &mut Vec<u8>, value: f64) {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if value.trunc() == value && (-LIMIT..LIMIT).contains(&value) {
        let _ = write!(out, "{value:.1}");
    } else {
        write_general(out, value, 16);
    }
}

/// C's `%.{precision}g`.
fn write_general(out: &mut Vec<u8>, value: f64, precision: usize) {
    if !value.is_finite() {
        out.extend_from_slice(match (value.is_nan(), value.is_sign_negative()) {
            (true, _) => b"nan".as_slice(),
            (false, true) => b"-inf",
            (false, false) => b"inf",
        });
        return;
    }
    let start = out.len();
    // The exponent the value has once rounded to `precision` digits
    // decides between fixed and exponent notation. log10 guesses the
    // value's own exponent, checked against exact powers of ten; it is
    // the rounded one unless rounding carries into one more integer digit
    // (a date in seconds takes this path).
    let magnitude = value.abs();
    if (1.0..1e15).contains(&magnitude) {
        let guess = magnitude.log10().floor() as usize;
        let power = |n: usize| 10f64.powi(n as i32);
        if guess < precision && power(guess) <= magnitude && magnitude < power(guess + 1) {
            let _ = write!(out, "{value:.*}", precision - 1 - guess);
            let digits = out[start..]
                .iter()
                .take_while(|&&b| b != b'.')
                .filter(|b| b.is_ascii_digit())
                .count();
            if digits == guess + 1 {
                strip_fraction_zeros(out, start);
                return;
            }
            out.truncate(start);
        }
    }
    let _ = write!(out, "{value:.*e}", precision - 1);
    let e_at = start
        + out[start..]
            .iter()
            .position(|&b| b == b'e')
            .expect("`{:e}` writes an exponent");
    let exponent: i32 = std::str::from_utf8(&out[e_at + 1..])
        .ok()
        .and_then(|e| e.parse().ok())
        .expect("`{:e}` writes a whole exponent");
    if exponent >= -4 && exponent < precision as i32 {
        out.truncate(start);
        let decimals = (precision as i32 - 1 - exponent) as usize;
        let _ = write!(out, "{value:.decimals$}");
        strip_fraction_zeros(out, start);
    } else {
        out.truncate(e_at);
        strip_fraction_zeros(out, start);
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exponent.unsigned_abs());
    }
}

/// Drops a fraction's trailing zeros (and a bare point) after `start`.
fn strip_fraction_zeros(out: &mut Vec<u8>, start: usize) {
    if !out[start..].contains(&b'.') {
        return;
    }
    while out.last() == Some(&b'0') {
        out.pop();
    }
    if out.last() == Some(&b'.') {
        out.pop();
    }
}

/// C's `%f`.
fn write_fixed6(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        let _ = write!(out, "{value:.6}");
    } else {
        write_general(out, value, 6);
    }
}

#[cfg(test)]
mod tests;
