//! Go durations (`1s`, `250ms`, `1m30s`), as Benthos writes its timeouts
//! and intervals.

use std::time::Duration;

use serde::Deserialize;

/// A Go duration (`1s`, `500ms`, `1m30s`); `None` for an empty one.
///
/// # Errors
///
/// Text that is not a sequence of numbers each followed by a unit (`ns`,
/// `us`, `µs`, `ms`, `s`, `m`, `h`), as Go's `time.ParseDuration` reads it.
pub fn parse_duration(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || format!("`{text}` is not a duration (like `1s`, `250ms`, `1m30s`)");
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        // A number too large for a Duration is refused, not a panic.
        let part = Duration::try_from_secs_f64(number * seconds).map_err(|_| bad())?;
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(Some(total))
}

/// A config field holding a required Go duration: `timeout: 5s`. An empty
/// one is refused (as Benthos refuses it), with the field named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct GoDuration(pub Duration);

impl TryFrom<String> for GoDuration {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match parse_duration(&text)? {
            Some(duration) => Ok(GoDuration(duration)),
            None => Err("a duration is required here (like `1s`, `250ms`, `1m30s`)".into()),
        }
    }
}

impl GoDuration {
    /// `text` as a default value; only for literals known to be valid.
    pub(crate) fn of(text: &str) -> GoDuration {
        GoDuration(
            parse_duration(text)
                .ok()
                .flatten()
                .unwrap_or(Duration::ZERO),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("1s").unwrap(), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_duration("1m30s").unwrap(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("250ms").unwrap(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_duration("").unwrap(), None);
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(
            parse_duration("9000000000000000000s9000000000000000000s9000000000000000000s").is_err()
        );
    }

    #[test]
    fn a_required_duration_refuses_an_empty_one() {
        assert_eq!(
            GoDuration::try_from("5s".to_string()).unwrap(),
            GoDuration(Duration::from_secs(5))
        );
        assert!(GoDuration::try_from(String::new()).is_err());
        assert!(GoDuration::try_from("soon".to_string()).is_err());
    }
}
