//! JSON as Go's `json.Marshal` writes a value that `json.Unmarshal`
//! decoded into `any`: what Dapr hands a binding as its data.
//!
//! Numbers went through `float64` (so `1.0` is `1` and integers past 2^53
//! lose digits); object keys are sorted; `<`, `>`, `&`, U+2028 and U+2029
//! are escaped as `\u003c`…; `\b` and `\f` are written short (Go 1.22 on).

use std::fmt::Write;

use serde_json::Value;

/// `value` encoded as Go's `json.Marshal` encodes it.
pub fn marshal(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_float(out, n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// Go's float64 encoding: the shortest digits that read back the same,
/// in exponent form below 1e-6 and from 1e21 on (`1e+21`, `1e-7`).
fn write_float(out: &mut String, f: f64) {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let text = format!("{f:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        out.push_str(mantissa);
        out.push('e');
        if !exponent.starts_with('-') {
            out.push('+');
        }
        out.push_str(exponent);
    } else {
        let _ = write!(out, "{f}");
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::marshal;
    use serde_json::json;

    fn go(text: &str) -> String {
        marshal(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn numbers_are_written_as_go_writes_float64() {
        assert_eq!(go("1"), "1");
        assert_eq!(go("1.0"), "1");
        assert_eq!(go("-0.0"), "-0");
        assert_eq!(go("0.1"), "0.1");
        assert_eq!(go("1e20"), "100000000000000000000");
        assert_eq!(go("1e21"), "1e+21");
        assert_eq!(go("1.5e300"), "1.5e+300");
        assert_eq!(go("0.000001"), "0.000001");
        assert_eq!(go("0.0000001"), "1e-7");
        assert_eq!(go("1.25e-10"), "1.25e-10");
        assert_eq!(go("12345678901234567890"), "12345678901234567000");
        assert_eq!(go("-9007199254740993"), "-9007199254740992");
        assert_eq!(go("5e-324"), "5e-324");
    }

    #[test]
    fn strings_keep_their_quotes_and_escape_as_go_does() {
        assert_eq!(marshal(&json!("salaboy")), "\"salaboy\"");
        assert_eq!(
            marshal(&json!("<a & b>\u{2028}\u{8}\u{c}\u{1}é\"\\\n")),
            r#""\u003ca \u0026 b\u003e\u2028\b\f\u0001é\"\\\n""#
        );
        assert_eq!(marshal(&json!("\u{7f}")), "\"\u{7f}\"");
    }

    #[test]
    fn objects_are_sorted_and_nothing_is_indented() {
        assert_eq!(
            go(r#"{"b": [1, true, null], "a": {"z": "", "y": 2.50}}"#),
            r#"{"a":{"y":2.5,"z":""},"b":[1,true,null]}"#
        );
        assert_eq!(go("null"), "null");
    }
}
