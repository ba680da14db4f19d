//! `nats.endpoint` entries: a function answering request-reply on a NATS
//! subject, in a queue group. The connection fields (`urls`, `auth`,
//! `tls`) are kept as written here and checked by `wafer-nats`, which
//! knows how to connect; this module checks the rest, alone and across the
//! registry.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::Abi;
use super::entry::{Entry, EntryKind, EntrySite, qualify};
use super::fields::Fields;
use crate::error::{Problem, ProblemKind};

/// A `nats.endpoint`: where requests come from and the function that
/// answers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsEndpointConfig {
    /// The servers (`urls`: a list, or one string), at least one, as
    /// written: `wafer-nats` parses them.
    pub urls: Vec<String>,
    /// The subject requests arrive on; `*` and `>` wildcards allowed.
    pub subject: String,
    /// The queue group (`queue`, default: the subject): each request goes
    /// to one member of the group, so every wafer serving the same subject
    /// and queue shares the calls.
    pub queue: String,
    /// The function's id.
    pub func: String,
    /// `auth`, a mapping, as written: `wafer-nats` reads it.
    pub auth: Option<Value>,
    /// `tls`, a mapping, as written: `wafer-nats` reads it.
    pub tls: Option<Value>,
}

/// `urls`: a list, or one string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Urls {
    One(String),
    Many(Vec<String>),
}

/// Reads a `nats.endpoint` entry's fields.
pub(super) fn parse_endpoint(fields: &mut Fields, site: &EntrySite) -> Option<EntryKind> {
    let urls = fields.required::<Urls>("urls").map(|urls| match urls {
        Urls::One(url) => vec![url],
        Urls::Many(urls) => urls,
    });
    if urls.as_ref().is_some_and(Vec::is_empty) {
        fields.problem(
            "urls",
            "name at least one server, like nats://127.0.0.1:4222",
        );
    }
    let subject: Option<String> = fields.required("subject");
    if let Some(Err(message)) = subject.as_deref().map(check_subject) {
        fields.problem("subject", message);
    }
    let queue: Option<String> = fields.optional("queue");
    if let Some(queue) = &queue
        && (queue.is_empty() || queue.contains(char::is_whitespace))
    {
        fields.problem(
            "queue",
            format!("`{queue}` is not a queue group name: it must be one word, without spaces"),
        );
    }
    let func: Option<String> = fields.required("func");
    let auth = mapping(fields, "auth");
    let tls = mapping(fields, "tls");
    let subject = subject?;
    Some(EntryKind::NatsEndpoint(NatsEndpointConfig {
        urls: urls?,
        queue: queue.unwrap_or_else(|| subject.clone()),
        subject,
        func: qualify(site.namespace, &func?),
        auth,
        tls,
    }))
}

/// An optional field that must be a mapping, kept as written.
fn mapping(fields: &mut Fields, field: &str) -> Option<Value> {
    let value: Option<Value> = fields.optional(field);
    if value.as_ref().is_some_and(|value| !value.is_object()) {
        fields.problem(field, "expected a mapping");
    }
    value
}

/// Whether `subject` is one a subscription can take: dot-separated tokens,
/// none empty, no white space, `*` only as a whole token, `>` only as the
/// whole last one.
fn check_subject(subject: &str) -> Result<(), String> {
    let fault = if subject.is_empty() {
        Some("it is empty")
    } else if subject.contains(char::is_whitespace) {
        Some("it holds white space")
    } else if subject.split('.').any(str::is_empty) {
        Some("a token between dots is empty")
    } else {
        let tokens: Vec<&str> = subject.split('.').collect();
        let last = tokens.len() - 1;
        tokens.iter().enumerate().find_map(|(i, token)| {
            let wild = |c: char| c == '*' || c == '>';
            match *token {
                ">" if i != last => Some("`>` may only be the last token"),
                "*" | ">" => None,
                token if token.contains(wild) => {
                    Some("`*` and `>` must be whole tokens, like `orders.*` or `orders.>`")
                }
                _ => None,
            }
        })
    };
    match fault {
        Some(fault) => Err(format!("`{subject}` is not a NATS subject: {fault}")),
        None => Ok(()),
    }
}

impl super::Registry {
    /// The `nats.endpoint` entries, by id.
    pub fn nats_endpoints(&self) -> impl Iterator<Item = (&Entry, &NatsEndpointConfig)> {
        self.entries().iter().filter_map(|entry| match &entry.kind {
            EntryKind::NatsEndpoint(endpoint) => Some((entry, endpoint)),
            _ => None,
        })
    }
}

/// Across the registry: an endpoint's function is not a wasi:http proxy
/// (a proxy answers HTTP requests only), and no two endpoints on the same
/// servers take the same subject (each request would be answered twice,
/// or split between two functions; the one declared later is refused,
/// naming the first). `declared` is every id in declaration order.
pub(super) fn endpoint_problems(
    by_id: &BTreeMap<String, Entry>,
    declared: &[String],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut kept: Vec<(&Entry, &NatsEndpointConfig)> = Vec::new();
    for entry in declared.iter().filter_map(|id| by_id.get(id)) {
        let EntryKind::NatsEndpoint(endpoint) = &entry.kind else {
            continue;
        };
        let function = by_id.get(&endpoint.func).and_then(Entry::function);
        if function.is_some_and(|f| f.abi == Abi::HttpProxy) {
            problems.push(entry.problem(
                ProblemKind::InvalidValue,
                "func",
                format!(
                    "{} is a wasi:http proxy, which answers HTTP requests only: give it an http.endpoint",
                    endpoint.func
                ),
            ));
            continue;
        }
        let first = kept
            .iter()
            .find(|(_, other)| other.subject == endpoint.subject && other.urls == endpoint.urls);
        match first {
            Some((first, _)) => problems.push(entry.problem(
                ProblemKind::InvalidValue,
                "subject",
                format!(
                    "{} is already served by {} on the same servers",
                    endpoint.subject, first.id
                ),
            )),
            None => kept.push((entry, endpoint)),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_take_whole_token_wildcards() {
        for good in ["math.add", "math.*", "math.>", ">", "*.add", "$SRV.x"] {
            assert_eq!(check_subject(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "math add",
            "math..add",
            ".math",
            "math.",
            "math.>.x",
            "ma*th",
            "a.b>",
        ] {
            assert!(check_subject(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints_are_read_and_checked_across_the_registry() {
        let registry = crate::Registry::from_yaml(
            "r.yaml",
            r#"
version: "1.0"
namespace: app
entries:
  - name: add
    kind: function.wat
    source: '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
    wit: "add: func(a: s32, b: s32) -> s32;"
    method: add
  - name: proxy
    kind: function.wat
    source: '(module)'
  - name: math
    kind: nats.endpoint
    urls: nats://127.0.0.1:4222
    subject: math.add
    func: add
  - name: again
    kind: nats.endpoint
    urls: [nats://127.0.0.1:4222]
    subject: math.add
    queue: other
    func: add
  - name: served-by-a-proxy
    kind: nats.endpoint
    urls: [nats://127.0.0.1:4222]
    subject: web
    func: proxy
  - name: broken
    kind: nats.endpoint
    urls: []
    subject: "a..b"
    queue: "two words"
    func: nowhere
    tls: yes
  - name: lost
    kind: nats.endpoint
    urls: nats://127.0.0.1:4222
    subject: lost
    func: nowhere
"#,
        );
        let problems: Vec<(String, String)> = registry
            .problems()
            .iter()
            .map(|p| (p.entry.clone().unwrap(), p.field.clone().unwrap()))
            .collect();
        let expected = [
            ("app:broken", "urls"),
            ("app:broken", "subject"),
            ("app:broken", "queue"),
            ("app:broken", "tls"),
            ("app:lost", "func"),
            ("app:again", "subject"),
            ("app:served-by-a-proxy", "func"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(entry, field)| (entry.to_string(), field.to_string()))
            .collect();
        assert_eq!(problems, expected);
        let (entry, endpoint) = registry.nats_endpoints().next().unwrap();
        assert_eq!(entry.id, "app:math");
        assert_eq!(entry.kind_name(), "nats.endpoint");
        assert_eq!(endpoint.urls, ["nats://127.0.0.1:4222"]);
        assert_eq!(endpoint.queue, "math.add");
        assert_eq!(endpoint.func, "app:add");
    }
}
