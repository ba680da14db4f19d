//! Fluent Bit's parsers (`src/flb_parser*.c`): a line of text in, a record
//! (a JSON object) and maybe its time out.
//!
//! A parser is defined inline where it is used (the `parser` field of the
//! `exec_wasi` and `stdin_records` inputs; a Fluent Bit config's
//! `[PARSER]` sections become such definitions):
//!
//! ```yaml
//! parser:
//!   format: regex                 # or json
//!   regex: '^(?<time>[^ ]+) (?<level>\w+) (?<message>.*)$'
//!   time_key: time                # default `time`
//!   time_format: '%Y-%m-%dT%H:%M:%S.%L%z'
//!   time_keep: false              # default: the time key leaves the record
//!   types: 'pid:integer ok:bool'  # regex only, as in Fluent Bit
//! ```
//!
//! * `json`: the line is one JSON object, taken as it is (key order kept).
//! * `regex`: Onigmo's Ruby syntax as Fluent Bit writes it (`(?<name>...)`,
//!   `/pattern/i`, `\h`; `^` and `$` match at line ends), on the `regex`
//!   crate: look-around and backreferences are not supported, a problem when
//!   the parser is built. Each named group is a string field, in the
//!   pattern's order; a group that matched nothing is left out unless
//!   `skip_empty_values` is off. `types` casts fields: `integer`, `float`,
//!   `bool`, `hex`, `string`.
//! * Time: only with `time_format` (see `time.rs` for the directives). A
//!   value that does not fit it is logged: `json` keeps the field, `regex`
//!   drops it (as Fluent Bit does), and the record gets no time.
//!   `time_offset` (`+0900`), `time_system_timezone` (which wins over
//!   `time_offset`, as in Fluent Bit) or `time_zone` (`Europe/Paris`, from
//!   the host's zoneinfo) place times whose format has no zone; `time_strict: off` makes a misfit silent.
//!
//! A line that is not a JSON object, or does not match the regex, is an
//! error: the input logs it and drops the line.

mod time;
mod zone;

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::fluentbit::value;

/// A parser's definition, as a config writes it (every value may be text,
/// as a classic Fluent Bit config writes it).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParserConfig {
    /// Its name, for logs.
    #[serde(default, deserialize_with = "value::text")]
    pub name: String,
    /// `json` or `regex` (any case).
    #[serde(deserialize_with = "value::text")]
    pub format: String,
    /// The pattern of a `regex` parser.
    #[serde(default, deserialize_with = "value::optional_text")]
    pub regex: Option<String>,
    /// The field holding the time (default `time`).
    #[serde(default, deserialize_with = "value::optional_text")]
    pub time_key: Option<String>,
    /// How the time is written (strptime, with `%L`).
    #[serde(default, deserialize_with = "value::optional_text")]
    pub time_format: Option<String>,
    /// Keep the time field in the record (default off).
    #[serde(default, deserialize_with = "value::bool")]
    pub time_keep: bool,
    /// Log a time that does not fit `time_format` (default on).
    #[serde(default = "yes", deserialize_with = "value::bool")]
    pub time_strict: bool,
    /// The UTC offset of times whose format has no zone.
    #[serde(default, deserialize_with = "value::optional_text")]
    pub time_offset: Option<String>,
    /// Times whose format has no zone are in the host's zone.
    #[serde(default, deserialize_with = "value::bool")]
    pub time_system_timezone: bool,
    /// The IANA zone of times whose format has no zone (`Europe/Paris`),
    /// from the host's zoneinfo files.
    #[serde(default, deserialize_with = "value::optional_text")]
    pub time_zone: Option<String>,
    /// Leave out empty captures (default on).
    #[serde(default = "yes", deserialize_with = "value::bool")]
    pub skip_empty_values: bool,
    /// `name:type` pairs separated by spaces.
    #[serde(default, deserialize_with = "value::optional_text")]
    pub types: Option<String>,
}

fn yes() -> bool {
    true
}

/// A parser, ready to parse lines.
#[derive(Debug, Clone)]
pub struct Parser {
    name: String,
    format: Format,
    time: Option<TimeLookup>,
    time_keep: bool,
    skip_empty: bool,
    types: Vec<(String, Cast)>,
}

#[derive(Debug, Clone)]
enum Format {
    Json,
    Regex {
        regex: regex::bytes::Regex,
        /// The named groups, in the pattern's order.
        names: Vec<String>,
    },
}

#[derive(Debug, Clone)]
struct TimeLookup {
    key: String,
    format: time::TimeFormat,
    strict: bool,
    format_text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cast {
    Integer,
    Float,
    Bool,
    Hex,
    String,
}

impl Parser {
    /// An input's `parser` field, built when it is set: a problem with
    /// it names the field.
    pub(crate) fn for_field(
        config: Option<&ParserConfig>,
    ) -> Result<Option<Parser>, crate::config::ComponentError> {
        config
            .map(Parser::new)
            .transpose()
            .map_err(|e| crate::config::ComponentError::invalid("parser", e))
    }

    /// Builds the parser `config` defines.
    ///
    /// # Errors
    ///
    /// What is wrong, naming the field: an unknown format, a regex that
    /// does not compile or has no named group, a `time_format` directive
    /// or `time_offset` that cannot be read, an unsupported `time_zone`.
    pub fn new(config: &ParserConfig) -> Result<Parser, String> {
        let format = match config.format.trim().to_ascii_lowercase().as_str() {
            "json" => Format::Json,
            "regex" => {
                let pattern = config
                    .regex
                    .as_deref()
                    .ok_or("format regex needs `regex`, a pattern with named groups")?;
                let regex = regex::bytes::Regex::new(&onigmo_to_regex(pattern)).map_err(|e| {
                    // The crate's message draws the rewritten pattern;
                    // its last line says what is wrong.
                    let text = e.to_string();
                    let why = text.lines().last().unwrap_or_default();
                    let why = why.strip_prefix("error: ").unwrap_or(why);
                    format!("regex `{pattern}` is not supported: {why}")
                })?;
                let names: Vec<String> =
                    regex.capture_names().flatten().map(String::from).collect();
                if names.is_empty() {
                    return Err(format!("regex `{pattern}` has no named group (?<name>...)"));
                }
                Format::Regex { regex, names }
            }
            "ltsv" | "logfmt" => {
                return Err(format!(
                    "format `{}` is not supported by wafer (json, regex)",
                    config.format
                ));
            }
            _ => return Err(format!("format `{}` is not json or regex", config.format)),
        };
        let zone = match (
            &config.time_zone,
            &config.time_offset,
            config.time_system_timezone,
        ) {
            (Some(_), _, _) if config.time_format.is_none() => {
                return Err("time_zone needs time_format".into());
            }
            (Some(zone), None, false) => {
                time::Zone::Named(std::sync::Arc::new(zone::NamedZone::load(zone)?))
            }
            (Some(_), _, _) => {
                return Err(
                    "time_zone cannot be combined with time_offset or time_system_timezone".into(),
                );
            }
            // As in Fluent Bit, the system's zone wins over time_offset.
            (None, _, true) => time::Zone::Local,
            (None, Some(offset), false) => time::Zone::Fixed(time::parse_time_offset(offset)?),
            (None, None, false) => time::Zone::Fixed(0),
        };
        let time = match &config.time_format {
            Some(text) => Some(TimeLookup {
                key: config.time_key.clone().unwrap_or_else(|| "time".into()),
                format: time::TimeFormat::new(text, zone)?,
                strict: config.time_strict,
                format_text: text.clone(),
            }),
            None => None,
        };
        Ok(Parser {
            name: config.name.clone(),
            format,
            time,
            time_keep: config.time_keep,
            skip_empty: config.skip_empty_values,
            types: config.types.as_deref().map(parse_types).unwrap_or_default(),
        })
    }

    /// The record `line` holds (without its line end) and the time its
    /// time field says, if it has one that fits `time_format`.
    ///
    /// # Errors
    ///
    /// The line is not a JSON object (`json`) or does not match (`regex`).
    pub fn parse(&self, line: &[u8]) -> Result<(Map<String, Value>, Option<SystemTime>), String> {
        match &self.format {
            Format::Json => self.parse_json(line),
            Format::Regex { regex, names } => self.parse_regex(regex, names, line),
        }
    }

    /// [`Parser::parse`], the record as compact JSON.
    ///
    /// # Errors
    ///
    /// As [`Parser::parse`].
    pub fn parse_to_bytes(&self, line: &[u8]) -> Result<(Vec<u8>, Option<SystemTime>), String> {
        let (record, time) = self.parse(line)?;
        let bytes = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        Ok((bytes, time))
    }

    fn parse_json(&self, line: &[u8]) -> Result<(Map<String, Value>, Option<SystemTime>), String> {
        let mut record = match serde_json::from_slice::<Value>(line) {
            Ok(Value::Object(record)) => record,
            Ok(_) => return Err("not a JSON object".into()),
            Err(e) => return Err(format!("not JSON: {e}")),
        };
        let Some(lookup) = &self.time else {
            return Ok((record, None));
        };
        let Some(Value::String(text)) = record.get(&lookup.key) else {
            return Ok((record, None));
        };
        // A time that does not fit stays in the record.
        let time = self.lookup(lookup, text);
        if time.is_some() && !self.time_keep {
            record.shift_remove(&lookup.key);
        }
        Ok((record, time))
    }

    fn parse_regex(
        &self,
        regex: &regex::bytes::Regex,
        names: &[String],
        line: &[u8],
    ) -> Result<(Map<String, Value>, Option<SystemTime>), String> {
        let captures = regex.captures(line).ok_or("does not match the regex")?;
        let mut record = Map::new();
        let mut time = None;
        for name in names {
            let value = captures.name(name).map_or(&b""[..], |m| m.as_bytes());
            if value.is_empty() && self.skip_empty {
                continue;
            }
            let value = String::from_utf8_lossy(value);
            if let Some(lookup) = self.time.as_ref().filter(|l| l.key == *name) {
                time = self.lookup(lookup, &value);
                // A time that does not fit leaves the record, as in Fluent Bit.
                if time.is_none() || !self.time_keep {
                    continue;
                }
            }
            let cast = self
                .types
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, c)| *c);
            record.insert(name.clone(), cast_value(&value, cast, name));
        }
        Ok((record, time))
    }

    fn lookup(&self, lookup: &TimeLookup, text: &str) -> Option<SystemTime> {
        match lookup.format.parse(text, chrono::Utc::now()) {
            Ok((seconds, nanos)) => Some(system_time(seconds, nanos)),
            Err(e) => {
                if lookup.strict {
                    tracing::warn!(parser = %self.name, "invalid time format {} for `{text}`: {e}", lookup.format_text);
                } else {
                    tracing::debug!(parser = %self.name, "invalid time format {} for `{text}`: {e}", lookup.format_text);
                }
                None
            }
        }
    }
}

fn system_time(seconds: i64, nanos: u32) -> SystemTime {
    let magnitude = Duration::new(seconds.unsigned_abs(), 0);
    let whole = if seconds >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    };
    whole + Duration::from_nanos(nanos.into())
}

/// Fluent Bit's `types`: `key:type` items separated by spaces; an unknown
/// type is `string`, an item without `:` is ignored.
fn parse_types(text: &str) -> Vec<(String, Cast)> {
    text.split_whitespace()
        .filter_map(|item| item.split_once(':'))
        .map(|(key, kind)| {
            let cast = match kind.to_ascii_lowercase().as_str() {
                "integer" => Cast::Integer,
                "float" => Cast::Float,
                "bool" => Cast::Bool,
                "hex" => Cast::Hex,
                _ => Cast::String,
            };
            (key.to_string(), cast)
        })
        .collect()
}

/// A captured value cast as `flb_parser_typecast` casts it: numbers read as
/// C's `atoll`/`atof`/`strtoull` read them (a leading number, 0 when there
/// is none); a bool that is not true/false stays a string, logged.
fn cast_value(text: &str, cast: Option<Cast>, key: &str) -> Value {
    let leading = text.trim_start();
    match cast {
        None | Some(Cast::String) => Value::String(text.to_string()),
        Some(Cast::Integer) => {
            let end = numeric_prefix(leading, false);
            // Out of range saturates, as strtoll does.
            let number = leading[..end].parse::<i64>().unwrap_or(match end {
                0 => 0,
                _ if leading.starts_with('-') => i64::MIN,
                _ => i64::MAX,
            });
            Value::from(number)
        }
        Some(Cast::Hex) => {
            let digits = leading
                .strip_prefix("0x")
                .or_else(|| leading.strip_prefix("0X"))
                .unwrap_or(leading);
            let end = digits.bytes().take_while(u8::is_ascii_hexdigit).count();
            Value::from(
                u64::from_str_radix(&digits[..end], 16).unwrap_or(if end == 0 {
                    0
                } else {
                    u64::MAX
                }),
            )
        }
        Some(Cast::Float) => {
            let end = numeric_prefix(leading, true);
            let number = leading[..end].parse::<f64>().unwrap_or(0.0);
            serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number)
        }
        Some(Cast::Bool) => {
            let lower = text.get(..5).unwrap_or(text).to_ascii_lowercase();
            if lower.starts_with("true") {
                Value::Bool(true)
            } else if lower.starts_with("false") {
                Value::Bool(false)
            } else {
                tracing::warn!("[parser] key={key} cast error. save as string.");
                Value::String(text.to_string())
            }
        }
    }
}

/// The length of the number at the start of `text`: a sign and digits, and
/// with `float` a fraction and an exponent.
fn numeric_prefix(text: &str, float: bool) -> usize {
    let bytes = text.as_bytes();
    let mut end = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let whole = digits(end);
    end += whole;
    if !float {
        return if whole == 0 { 0 } else { end };
    }
    let mut any = whole > 0;
    if bytes.get(end) == Some(&b'.') {
        let fraction = digits(end + 1);
        if any || fraction > 0 {
            end += 1 + fraction;
            any = true;
        }
    }
    if !any {
        return 0;
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
        let exponent = digits(end + 1 + sign);
        if exponent > 0 {
            end += 1 + sign + exponent;
        }
    }
    end
}

/// A pattern in Onigmo's Ruby syntax, as Fluent Bit compiles it, for the
/// `regex` crate: `/pattern/imx` unwrapped into inline flags; `^` and `$`
/// match at line ends, as in Ruby; `\h`/`\H` (hex digits) and `\Z` written
/// out. Named groups `(?<name>...)` are the same in both.
pub(crate) fn onigmo_to_regex(pattern: &str) -> String {
    let mut body = pattern;
    let mut flags = String::from("m");
    if let Some(inner) = pattern.strip_prefix('/')
        && let Some(close) = inner.rfind('/')
    {
        let options = &inner[close + 1..];
        if options.chars().all(|c| "imxo".contains(c)) {
            body = &inner[..close];
            // Ruby's `m` is "dot matches newline", the regex crate's `s`.
            for (ruby, ours) in [('i', 'i'), ('m', 's'), ('x', 'x')] {
                if options.contains(ruby) {
                    flags.push(ours);
                }
            }
        }
    }
    let mut out = format!("(?{flags})");
    let mut chars = body.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('h') if in_class => out.push_str("0-9a-fA-F"),
                Some('h') => out.push_str("[0-9a-fA-F]"),
                Some('H') if !in_class => out.push_str("[^0-9a-fA-F]"),
                Some('Z') if !in_class => out.push_str(r"\n?\z"),
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            },
            '[' => {
                in_class = true;
                out.push(c);
            }
            ']' => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
