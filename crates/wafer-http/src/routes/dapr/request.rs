//! Dapr's `OutputBindingRequest`, read as Dapr's Go decoder reads it: the
//! first JSON value of the body (anything after it is ignored), field names
//! matched regardless of case, `null` leaving a field empty, invalid UTF-8
//! replaced.

use std::collections::HashMap;

use serde_json::Value;

/// `{"operation": …, "metadata": {…}, "data": …}`.
#[derive(Debug, Default, PartialEq)]
pub struct BindingRequest {
    /// What to do; empty when not given.
    pub operation: String,
    /// String metadata: `args` is the program's arguments, comma-separated.
    pub metadata: HashMap<String, String>,
    /// The data, `null` when not given.
    pub data: Value,
}

impl BindingRequest {
    /// Reads a request body.
    ///
    /// # Errors
    ///
    /// Go's reason, as Dapr puts it after `failed deserializing HTTP body: `.
    pub fn parse(body: &[u8]) -> Result<BindingRequest, String> {
        let text = String::from_utf8_lossy(body);
        let first = serde_json::Deserializer::from_str(&text)
            .into_iter::<Value>()
            .next();
        let value = match first {
            None => return Err("EOF".into()),
            Some(Err(e)) if e.is_eof() => return Err("unexpected EOF".into()),
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(value)) => value,
        };
        let mut request = BindingRequest::default();
        let fields = match value {
            Value::Null => return Ok(request),
            Value::Object(fields) => fields,
            other => {
                return Err(format!(
                    "json: cannot unmarshal {} into Go value of type http.OutputBindingRequest",
                    go_kind(&other)
                ));
            }
        };
        for (name, value) in fields {
            if name.eq_ignore_ascii_case("operation") {
                match value {
                    Value::String(operation) => request.operation = operation,
                    Value::Null => {}
                    other => return Err(type_error(&other, "operation", "string")),
                }
            } else if name.eq_ignore_ascii_case("metadata") {
                request.metadata = match value {
                    Value::Null => HashMap::new(),
                    Value::Object(items) => items
                        .into_iter()
                        .map(|(key, value)| match value {
                            Value::String(text) => Ok((key, text)),
                            Value::Null => Ok((key, String::new())),
                            other => Err(type_error(&other, "metadata", "string")),
                        })
                        .collect::<Result<_, _>>()?,
                    other => return Err(type_error(&other, "metadata", "map[string]string")),
                };
            } else if name.eq_ignore_ascii_case("data") {
                request.data = value;
            }
        }
        Ok(request)
    }

    /// The program's arguments: metadata `args` split on commas.
    pub fn args(&self) -> Vec<&str> {
        super::super::comma_separated(self.metadata.get("args").map(String::as_str))
    }
}

fn type_error(value: &Value, field: &str, go_type: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go struct field OutputBindingRequest.{field} of type {go_type}",
        go_kind(value)
    )
}

fn go_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::BindingRequest;
    use serde_json::json;

    #[test]
    fn fields_are_read_as_go_reads_them() {
        let request = BindingRequest::parse(
            br#"{"Operation": "execute", "METADATA": {"args": "a,b", "x": null}, "data": "salaboy"} trailing"#,
        )
        .unwrap();
        assert_eq!(request.operation, "execute");
        assert_eq!(request.args(), ["a", "b"]);
        assert_eq!(request.metadata["x"], "");
        assert_eq!(request.data, json!("salaboy"));
        let empty = BindingRequest::parse(b"null").unwrap();
        assert_eq!(empty, BindingRequest::default());
        assert!(empty.args().is_empty());
    }

    #[test]
    fn malformed_bodies_say_why() {
        assert_eq!(BindingRequest::parse(b"").unwrap_err(), "EOF");
        assert_eq!(
            BindingRequest::parse(b" {\"a\"").unwrap_err(),
            "unexpected EOF"
        );
        assert!(BindingRequest::parse(b"{x}").is_err());
        assert_eq!(
            BindingRequest::parse(b"[1]").unwrap_err(),
            "json: cannot unmarshal array into Go value of type http.OutputBindingRequest"
        );
        assert_eq!(
            BindingRequest::parse(br#"{"metadata": {"args": 1}}"#).unwrap_err(),
            "json: cannot unmarshal number into Go struct field OutputBindingRequest.metadata of type string"
        );
        assert!(BindingRequest::parse(br#"{"operation": 5}"#).is_err());
    }
}
