//! `${VAR}` and `${VAR:default}` in a pipeline's values, as Benthos
//! interpolates its config files; `$${VAR}` stays literal `${VAR}`, and
//! `${! … }` (Benthos' interpolation functions) is left for the component
//! that reads it.

use serde_json::Value;

/// Replaces every `${VAR}` in the strings of `value`. A string that is
/// exactly one `${…}` takes the YAML type of what it expands to, so
/// `threads: ${THREADS:4}` is a number, as in a Benthos file (where the
/// text is replaced before it is parsed). Returns the names of variables
/// that are unset and have no default.
pub fn interpolate(value: &mut Value, lookup: &impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut missing = Vec::new();
    walk(value, lookup, &mut missing);
    missing
}

fn walk(value: &mut Value, lookup: &impl Fn(&str) -> Option<String>, missing: &mut Vec<String>) {
    match value {
        Value::String(text) if text.contains("${") => {
            let whole = is_one_reference(text);
            let expanded = expand(text, lookup, missing);
            *value = match whole {
                true => scalar(&expanded),
                false => Value::String(expanded),
            };
        }
        Value::Array(items) => items.iter_mut().for_each(|v| walk(v, lookup, missing)),
        Value::Object(map) => map.values_mut().for_each(|v| walk(v, lookup, missing)),
        _ => {}
    }
}

/// Whether `text` is one `${…}` and nothing else.
fn is_one_reference(text: &str) -> bool {
    text.starts_with("${") && text.find('}') == Some(text.len() - 1)
}

/// The YAML scalar `text` reads as: a number, a bool, or a string.
fn scalar(text: &str) -> Value {
    match serde_norway::from_str::<Value>(text) {
        Ok(value @ (Value::Number(_) | Value::Bool(_))) => value,
        _ => Value::String(text.to_string()),
    }
}

fn expand(
    text: &str,
    lookup: &impl Fn(&str) -> Option<String>,
    missing: &mut Vec<String>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            // `$${X}` is the escape for a literal `${X}`.
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        if rest[at + 2..].starts_with('!') {
            out.push_str(&rest[..at + 2]);
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let Some(end) = rest[at..].find('}') else {
            out.push_str(&rest[at..]);
            return out;
        };
        let reference = &rest[at + 2..at + end];
        let (name, default) = match reference.split_once(':') {
            Some((name, default)) => (name, Some(default)),
            None => (reference, None),
        };
        match lookup(name)
            .filter(|v| !v.is_empty())
            .or(default.map(str::to_string))
        {
            Some(value) => out.push_str(&value),
            None => missing.push(name.to_string()),
        }
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        match name {
            "PATH_IN" => Some("/data/in.wasm".into()),
            "THREADS" => Some("3".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_defaults_types_and_escapes() {
        let mut value = json!({
            "module_path": "${PATH_IN}",
            "prefix": "at ${PATH_IN}!",
            "threads": "${THREADS}",
            "fallback": "${NOPE:x.wasm}",
            "flag": "${NOPE:true}",
            "empty": "${EMPTY:dflt}",
            "literal": "$${PATH_IN}",
            "function": "out.${! meta(\"kind\") }",
        });
        assert!(interpolate(&mut value, &env).is_empty());
        assert_eq!(
            value,
            json!({
                "module_path": "/data/in.wasm",
                "prefix": "at /data/in.wasm!",
                "threads": 3,
                "fallback": "x.wasm",
                "flag": true,
                "empty": "dflt",
                "literal": "${PATH_IN}",
                "function": "out.${! meta(\"kind\") }",
            })
        );
    }

    #[test]
    fn names_every_missing_variable() {
        let mut value = json!(["${A}", {"b": "x${B}y"}]);
        assert_eq!(interpolate(&mut value, &env), ["A", "B"]);
    }
}
