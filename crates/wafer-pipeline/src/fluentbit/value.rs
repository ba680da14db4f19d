//! Fluent Bit's way of writing values, for the `deserialize_with` of the
//! Fluent Bit components' fields: a classic `.conf` file writes every value
//! as text (`On`, `4k`, `a, b`), a YAML one may write it typed (`true`,
//! `4096`, a list). Each helper takes both.

use serde::{Deserialize, Deserializer, de::Error};

/// A scalar as either dialect writes it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Scalar {
    fn text(self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Text(t) => t,
        }
    }
}

/// `On`/`Off`, `true`/`false`, `yes`/`no` (any case), as Fluent Bit's
/// `flb_utils_bool` reads them.
pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    parse_bool(&Scalar::deserialize(d)?.text()).map_err(D::Error::custom)
}

/// [`bool`] from text.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("`{text}` is not On/Off, true/false or yes/no")),
    }
}

/// An integer, written as a number or as text.
pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let text = Scalar::deserialize(d)?.text();
    text.trim()
        .parse()
        .map_err(|_| D::Error::custom(format!("`{text}` is not a whole number")))
}

/// A size in bytes: `4096`, `4k`, `4K`, `4KB`, `1.5M`, `1G` (powers of
/// 1000, as Fluent Bit's `flb_utils_size_to_bytes` counts them), or
/// `false` for 0.
pub fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    parse_size(&Scalar::deserialize(d)?.text()).map_err(D::Error::custom)
}

/// [`size`] from text.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("false") {
        return Ok(0);
    }
    let digits = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        _ => 0.0,
    };
    number
        .parse::<f64>()
        .ok()
        .map(|n| n * scale)
        .filter(|bytes| scale != 0.0 && bytes.is_finite() && *bytes < 9.0e18)
        // Fluent Bit truncates, as its cast does.
        .map(|bytes| bytes as u64)
        .ok_or_else(|| format!("`{text}` is not a size (4096, 4k, 1.5M, 1G)"))
}

/// A list: comma-separated text (`a, b`), or a YAML sequence.
pub fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Items(Vec<String>),
        Text(String),
    }
    Ok(match List::deserialize(d)? {
        List::Items(items) => items,
        List::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    })
}

/// Text, written as text or as a typed YAML scalar (`tag: 1` is `"1"`).
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Scalar::deserialize(d)?.text())
}

/// [`text`], for an optional field (`#[serde(default)]`).
pub fn optional_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    text(d).map(Some)
}

/// [`size`], for an optional field (`#[serde(default)]`).
pub fn optional_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    size(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bools_read_as_fluent_bit_reads_them() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4000));
        assert_eq!(parse_size("8MB"), Ok(8_000_000));
        assert_eq!(parse_size("1.5M"), Ok(1_500_000));
        assert_eq!(parse_size("false"), Ok(0));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("4x").is_err());
        assert_eq!(parse_bool("On"), Ok(true));
        assert_eq!(parse_bool("no"), Ok(false));
        assert!(parse_bool("maybe").is_err());
    }
}
