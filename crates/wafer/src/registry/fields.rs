//! Reading one entry's fields, turning every mistake into a located
//! [`Problem`] instead of stopping at the first.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{Problem, ProblemKind};

/// What loading found besides entries: problems (the entry is refused) and
/// fields that are accepted but whose behaviour is not active yet.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub problems: Vec<Problem>,
    pub inactive: Vec<Problem>,
}

/// One entry's YAML mapping, read field by field.
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    context: Problem,
    findings: &'a mut Findings,
    problems_before: usize,
}

impl<'a> Fields<'a> {
    /// `context` carries the file and entry every problem is reported under.
    pub fn new(map: &'a Map<String, Value>, context: Problem, findings: &'a mut Findings) -> Self {
        let problems_before = findings.problems.len();
        Fields {
            map,
            context,
            findings,
            problems_before,
        }
    }

    /// Whether any problem was reported through this reader.
    pub fn has_problems(&self) -> bool {
        self.findings.problems.len() > self.problems_before
    }

    /// Records a problem with `field`'s value.
    pub fn problem(&mut self, field: &str, message: impl Into<String>) {
        self.problem_of(ProblemKind::InvalidValue, field, message);
    }

    /// Records a problem of `kind` with `field`.
    pub fn problem_of(&mut self, kind: ProblemKind, field: &str, message: impl Into<String>) {
        let problem = self.located(kind, field, message);
        self.findings.problems.push(problem);
    }

    fn located(&self, kind: ProblemKind, field: &str, message: impl Into<String>) -> Problem {
        let mut problem = self.context.clone();
        problem.kind = kind;
        problem.field = Some(field.to_string());
        problem.message = message.into();
        problem
    }

    /// Reports every key that is not in `known`.
    pub fn reject_unknown(&mut self, what: &str, known: &[&str]) {
        let unknown: Vec<String> = self
            .map
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            self.problem_of(
                ProblemKind::UnknownField,
                &key,
                format!("unknown field for {what} (known: {})", known.join(", ")),
            );
        }
    }

    /// The fields among `names` that are present, as a mapping.
    pub fn subset(&self, names: &[&str]) -> Value {
        let picked = self
            .map
            .iter()
            .filter(|(key, _)| names.contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        Value::Object(picked)
    }

    /// Whether `field` is present (and not `null`).
    pub fn has(&self, field: &str) -> bool {
        self.map.get(field).is_some_and(|v| !v.is_null())
    }

    /// Reads an optional field; a value of the wrong shape is a problem.
    pub fn optional<T: DeserializeOwned>(&mut self, field: &str) -> Option<T> {
        let value = self.map.get(field).filter(|v| !v.is_null())?;
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(parsed) => Some(parsed),
            Err(err) => {
                let inner = err.path().to_string();
                let field = if inner == "." {
                    field.to_string()
                } else {
                    format!("{field}.{inner}")
                };
                let message = err.into_inner().to_string();
                self.problem(&field, message);
                None
            }
        }
    }

    /// Reads a required field; absence is a problem.
    pub fn required<T: DeserializeOwned>(&mut self, field: &str) -> Option<T> {
        if !self.has(field) {
            self.problem_of(ProblemKind::MissingField, field, "missing required field");
            return None;
        }
        self.optional(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_type_errors_name_the_inner_field() {
        let value = json!({"pool": {"type": "lazy", "max_size": "four"}});
        let mut findings = Findings::default();
        let mut fields = Fields::new(
            value.as_object().unwrap(),
            Problem::new(ProblemKind::Syntax, ""),
            &mut findings,
        );
        let pool: Option<crate::registry::PoolConfig> = fields.optional("pool");
        assert!(pool.is_none());
        assert_eq!(findings.problems[0].field.as_deref(), Some("pool.max_size"));
    }

    #[test]
    fn unknown_and_missing_fields_are_all_reported() {
        let value = json!({"name": "x", "sorce": "oops", "methd": "y"});
        let mut findings = Findings::default();
        let mut fields = Fields::new(
            value.as_object().unwrap(),
            Problem::new(ProblemKind::Syntax, ""),
            &mut findings,
        );
        fields.reject_unknown("function.wat", &["name", "source", "method"]);
        let _: Option<String> = fields.required("source");
        assert_eq!(findings.problems.len(), 3);
    }
}
