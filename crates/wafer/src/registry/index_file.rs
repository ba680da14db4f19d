//! One Wippy `_index.yaml`: a `version`, a `namespace` and a list of
//! `entries`.

use std::path::Path;

use serde_json::Value;

use super::entry::{Entry, EntrySite, parse_kind};
use super::fields::{Fields, Findings};
use super::yaml::DuplicateKey;
use crate::error::{Problem, ProblemKind};

const TOP_LEVEL: &[&str] = &["version", "namespace", "entries", "meta"];

/// Parses a Wippy registry file, reporting every problem into `findings`.
/// Entries with problems are left out of the returned list.
pub(crate) fn parse_index_file(
    path: &Path,
    document: &Value,
    duplicates: &[DuplicateKey],
    findings: &mut Findings,
) -> Vec<Entry> {
    let file_problem = |message: String| Problem::new(ProblemKind::Syntax, message).in_file(path);
    let Some(top) = document.as_object() else {
        findings.problems.push(file_problem(
            "expected a mapping with version, namespace and entries".into(),
        ));
        return Vec::new();
    };
    let mut fields = Fields::new(
        top,
        Problem::new(ProblemKind::Syntax, "").in_file(path),
        findings,
    );
    fields.reject_unknown("a registry file", TOP_LEVEL);
    // A key written twice inside an entry refuses that entry; anywhere else,
    // the whole file.
    let entry_count = top
        .get("entries")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    for duplicate in duplicates
        .iter()
        .filter(|d| !(0..entry_count).any(|i| d.is_in_item("entries", i)))
    {
        fields.problem_of(
            ProblemKind::DuplicateKey,
            &duplicate.field(0),
            duplicate.message(),
        );
    }
    match fields.required::<Value>("version") {
        Some(Value::String(v)) if v == "1.0" || v == "1" => {}
        Some(Value::Number(n)) if n.as_f64() == Some(1.0) => {}
        Some(other) => fields.problem(
            "version",
            format!("unsupported version {other} (expected \"1.0\")"),
        ),
        None => {}
    }
    let namespace: Option<String> = fields.required("namespace");
    if let Some(ns) = &namespace
        && !is_valid_namespace(ns)
    {
        fields.problem(
            "namespace",
            format!("`{ns}` is not a dotted name like app.api"),
        );
    }
    let entries: Vec<Value> = fields.optional("entries").unwrap_or_default();
    let has_header_problems = fields.has_problems();
    let Some(namespace) = namespace.filter(|_| !has_header_problems) else {
        return Vec::new();
    };
    let base_dir = path.parent().unwrap_or(Path::new("."));
    let site = EntrySite {
        namespace: &namespace,
        base_dir,
    };
    entries
        .iter()
        .enumerate()
        .filter_map(|(index, value)| {
            let duplicates = duplicates.iter().filter(|d| d.is_in_item("entries", index));
            parse_entry(path, &site, index, value, duplicates, findings)
        })
        .collect()
}

fn parse_entry<'a>(
    path: &Path,
    site: &EntrySite,
    index: usize,
    value: &Value,
    duplicates: impl Iterator<Item = &'a DuplicateKey>,
    findings: &mut Findings,
) -> Option<Entry> {
    let Some(map) = value.as_object() else {
        let problem = Problem::new(ProblemKind::Syntax, "expected a mapping")
            .in_file(path)
            .in_entry(format!("#{}", index + 1));
        findings.problems.push(problem);
        return None;
    };
    let name = map.get("name").and_then(Value::as_str);
    let label = match name {
        Some(name) => format!("{}:{name}", site.namespace),
        None => format!("#{} in {}", index + 1, site.namespace),
    };
    let mut fields = Fields::new(
        map,
        Problem::new(ProblemKind::Syntax, "")
            .in_file(path)
            .in_entry(&label),
        findings,
    );
    match name {
        None if map.contains_key("name") => fields.problem("name", "expected a string"),
        None => fields.problem_of(ProblemKind::MissingField, "name", "missing required field"),
        Some(name) if !is_valid_name(name) => fields.problem(
            "name",
            format!("`{name}` may hold only letters, digits, `_`, `-` and `.`"),
        ),
        Some(_) => {}
    }
    for duplicate in duplicates {
        fields.problem_of(
            ProblemKind::DuplicateKey,
            &duplicate.field(2),
            duplicate.message(),
        );
    }
    let kind: Option<String> = fields.required("kind");
    let parsed = parse_kind(kind.as_deref()?, &mut fields, site);
    let kind = parsed.filter(|_| !fields.has_problems())?;
    Some(Entry {
        id: label,
        file: path.to_path_buf(),
        kind,
        meta: map.get("meta").cloned(),
    })
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn is_valid_namespace(namespace: &str) -> bool {
    namespace.split('.').all(|part| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> (Vec<Entry>, Findings) {
        let documents = super::super::yaml::documents(yaml).unwrap();
        let mut findings = Findings::default();
        let entries = parse_index_file(
            Path::new("reg/_index.yaml"),
            &documents[0].value,
            &documents[0].duplicates,
            &mut findings,
        );
        (entries, findings)
    }

    #[test]
    fn seed_answer_entry_parses() {
        let (entries, findings) = parse(
            r#"
version: "1.0"
namespace: app
entries:
  - name: answer
    kind: function.wat
    source: |
      (module (func (export "answer") (result i32) i32.const 42))
    wit: |
      answer: func() -> s32;
    method: answer
    pool:
      type: inline
"#,
        );
        assert!(findings.problems.is_empty(), "{:?}", findings.problems);
        assert_eq!(entries[0].id, "app:answer");
        assert_eq!(entries[0].kind_name(), "function.wat");
    }

    #[test]
    fn header_problems_are_reported_together() {
        let (entries, findings) = parse("version: \"2.0\"\nnamespace: \"bad ns\"\nentrys: []\n");
        assert!(entries.is_empty());
        let fields: Vec<_> = findings
            .problems
            .iter()
            .map(|p| p.field.clone().unwrap())
            .collect();
        assert_eq!(fields, ["entrys", "version", "namespace"]);
    }

    #[test]
    fn a_key_written_twice_refuses_its_entry_or_the_file() {
        let (entries, findings) = parse(
            "version: \"1.0\"\nnamespace: app\nentries:\n  - name: a\n    kind: env.variable\n    variable: X\n    variable: Y\n  - name: b\n    kind: env.variable\n    variable: Z\n",
        );
        assert_eq!(entries.len(), 1, "{:?}", findings.problems);
        let problem = &findings.problems[0];
        assert_eq!(problem.kind, ProblemKind::DuplicateKey);
        assert_eq!(problem.entry.as_deref(), Some("app:a"));
        assert_eq!(problem.field.as_deref(), Some("variable"));
        assert!(problem.message.contains("line 7"), "{}", problem.message);

        let (entries, findings) =
            parse("version: \"1.0\"\nnamespace: app\nnamespace: other\nentries: []\n");
        assert!(entries.is_empty());
        assert_eq!(findings.problems[0].field.as_deref(), Some("namespace"));
    }

    #[test]
    fn services_and_pipelines_load() {
        let (entries, findings) = parse(
            r#"
version: "1.0"
namespace: app
entries:
  - name: svc
    kind: http.service
    addr: ":8080"
  - name: lines
    kind: pipeline
    input: {stdin: {}}
    output: {stdout: {}}
"#,
        );
        assert!(findings.problems.is_empty(), "{:?}", findings.problems);
        assert_eq!(entries.len(), 2);
        assert!(findings.inactive.is_empty(), "{:?}", findings.inactive);
    }
}
