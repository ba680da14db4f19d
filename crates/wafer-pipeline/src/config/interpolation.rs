//! Benthos' interpolated strings, the part of them a message's routing
//! needs: literal text with `${! meta("key") }` (also written
//! `${! metadata("key") }` or `${! @key }`) replaced by the message's
//! metadata value. A message without the key is an error naming it,
//! which an output makes that message's failure (it follows `on_error`).
//! Benthos writes `null` in its place instead: a subject like `out.null`
//! sends the message where nobody expects it, and an id `null` shared by
//! every such message would have the broker drop all but the first as
//! duplicates.
//!
//! ```
//! use wafer_pipeline::config::interpolation::Template;
//!
//! let subject = Template::parse(r#"out.${! meta("kind") }"#).unwrap();
//! let message = wafer::Message::new("x").with_meta("kind", "a");
//! assert_eq!(subject.render(&message).unwrap(), "out.a");
//! ```

use wafer::Message;

/// A parsed interpolated string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Meta(String),
}

impl Template {
    /// Parses `text`.
    ///
    /// # Errors
    ///
    /// An unclosed `${!`, or an expression other than `meta("key")`,
    /// `metadata("key")` and `@key`.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${!") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 3..];
            let Some(end) = after.find('}') else {
                return Err(format!("`{text}`: `${{!` is never closed by `}}`"));
            };
            parts.push(Part::Meta(metadata_key(after[..end].trim()).ok_or_else(|| {
                format!(
                    "`{text}`: wafer interpolates `${{! meta(\"key\") }}` and `${{! @key }}` only, not `{}`",
                    after[..end].trim()
                )
            })?));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Whether it has no `${! }` at all.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|part| matches!(part, Part::Text(_)))
    }

    /// The string for `message`.
    ///
    /// # Errors
    ///
    /// When the message has no metadata under a key the template names.
    pub fn render(&self, message: &Message) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Meta(key) => match message.metadata.get(key) {
                    Some(value) => out.push_str(value),
                    None => return Err(format!("the message has no metadata `{key}`")),
                },
            }
        }
        Ok(out)
    }
}

/// The key of `meta("key")`, `metadata("key")` or `@key`.
fn metadata_key(expression: &str) -> Option<String> {
    if let Some(key) = expression.strip_prefix('@') {
        let valid = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        return valid.then(|| key.to_string());
    }
    let inner = expression
        .strip_prefix("metadata(")
        .or_else(|| expression.strip_prefix("meta("))?
        .strip_suffix(')')?
        .trim();
    let key = inner.strip_prefix('"')?.strip_suffix('"')?;
    (!key.is_empty() && !key.contains('"')).then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_interpolated_and_a_missing_key_is_named() {
        let template =
            Template::parse(r#"a.${! meta("kind") }.${!@id}.${! metadata("x") }"#).unwrap();
        assert!(!template.is_literal());
        let message = Message::new("")
            .with_meta("kind", "k")
            .with_meta("id", "7")
            .with_meta("x", "y");
        assert_eq!(template.render(&message).unwrap(), "a.k.7.y");
        let error = template.render(&Message::new("")).unwrap_err();
        assert!(error.contains("`kind`"), "{error}");
        assert!(Template::parse("plain").unwrap().is_literal());
    }

    #[test]
    fn other_expressions_are_refused() {
        for text in [
            r#"${! content() }"#,
            "${! @ }",
            "${! meta(kind) }",
            "out.${! meta(\"k\")",
        ] {
            assert!(Template::parse(text).is_err(), "{text}");
        }
    }
}
