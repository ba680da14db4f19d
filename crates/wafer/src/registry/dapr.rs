//! Dapr component files (`kind: Component`, `spec.type: bindings.wasm`).
//!
//! A binding becomes a function entry with `abi: wasi-command` whose id is
//! `metadata.name`. Its `url` stays as written: a `file://` URL is relative
//! to the working directory, as in Dapr.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::config::{
    Abi, EventFormat, FunctionConfig, LimitsConfig, ModuleSource, Transport, WasiConfig,
};
use super::entry::{Entry, EntryKind};
use super::fields::{Fields, Findings};
use super::yaml::DuplicateKey;
use crate::error::{Problem, ProblemKind};
use crate::hash::Sha256Hash;
use crate::wasi::{DAPR_HOSTS_KEY, HostPattern, HostsSource, OutboundHttp};

/// The one Dapr component type wafer runs.
pub(crate) const WASM_BINDING: &str = "bindings.wasm";

/// Whether a YAML document is a Dapr component (`apiVersion: dapr.io/…`,
/// `kind: Component`).
pub(crate) fn is_dapr_component(document: &Value) -> bool {
    let api = document.get("apiVersion").and_then(Value::as_str);
    let kind = document.get("kind").and_then(Value::as_str);
    api.is_some_and(|a| a.starts_with("dapr.io/")) && kind == Some("Component")
}

/// The component's `spec.type`, if it has one.
pub(crate) fn component_type(document: &Value) -> Option<&str> {
    document.get("spec")?.get("type")?.as_str()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    #[serde(rename = "type")]
    _type: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    ignore_errors: Option<bool>,
    #[serde(default)]
    init_timeout: Option<String>,
    #[serde(default)]
    metadata: Vec<MetadataItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MetadataItem {
    name: String,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    secret_key_ref: Option<Value>,
}

const METADATA_NAMES: &[&str] = &[
    "url",
    "strictSandbox",
    "direction",
    "route",
    "hash",
    DAPR_HOSTS_KEY,
];

/// Parses a `bindings.wasm` component, reporting every problem into
/// `findings`.
pub(crate) fn parse_binding(
    path: &Path,
    document: &Value,
    duplicates: &[DuplicateKey],
    findings: &mut Findings,
) -> Option<Entry> {
    let top = document.as_object()?;
    let name = document
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str);
    let label = name.unwrap_or("(unnamed Dapr component)");
    let mut fields = Fields::new(
        top,
        Problem::new(ProblemKind::Syntax, "")
            .in_file(path)
            .in_entry(label),
        findings,
    );
    fields.reject_unknown(
        "a Dapr component",
        &["apiVersion", "kind", "metadata", "spec", "auth", "scopes"],
    );
    for duplicate in duplicates {
        fields.problem_of(
            ProblemKind::DuplicateKey,
            &duplicate.field(0),
            duplicate.message(),
        );
    }
    match name {
        None => fields.problem_of(
            ProblemKind::MissingField,
            "metadata.name",
            "missing required field",
        ),
        Some(name) if !is_dns_label(name) => fields.problem(
            "metadata.name",
            format!(
                "`{name}` is not a Kubernetes name (lowercase letters, digits and `-`, at most 63)"
            ),
        ),
        Some(_) => {}
    }
    let spec: Spec = fields.required("spec")?;
    if spec.version.as_deref().is_some_and(|v| v != "v1") {
        fields.problem("spec.version", "bindings.wasm has only version v1");
    }
    let _ = (spec.ignore_errors, spec.init_timeout);
    let mut url = None;
    let mut strict_sandbox = false;
    let mut hash = None;
    let mut outbound_http = OutboundHttp {
        source: HostsSource::DaprMetadata,
        ..OutboundHttp::default()
    };
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    for (index, item) in spec.metadata.iter().enumerate() {
        let field = format!("spec.metadata[{index}]");
        if let Some(first) = first_of.insert(&item.name, index) {
            first_of.insert(&item.name, first);
            fields.problem_of(
                ProblemKind::DuplicateKey,
                &field,
                format!(
                    "metadata `{}` is given twice (first at spec.metadata[{first}])",
                    item.name
                ),
            );
            continue;
        }
        if item.secret_key_ref.is_some() {
            fields.problem(&field, "secretKeyRef is not supported; give `value`");
            continue;
        }
        let value = match &item.value {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        match item.name.as_str() {
            "url" => url = Some(value),
            "strictSandbox" => match value.as_str() {
                "true" => strict_sandbox = true,
                "false" | "" => strict_sandbox = false,
                other => fields.problem(
                    &field,
                    format!("strictSandbox must be true or false, not `{other}`"),
                ),
            },
            "hash" => match value.parse::<Sha256Hash>() {
                Ok(h) => hash = Some(h),
                Err(message) => fields.problem(&field, message),
            },
            DAPR_HOSTS_KEY => {
                outbound_http.granted = true;
                for host in value.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                    match host.parse::<HostPattern>() {
                        Ok(pattern) => outbound_http.allowed_hosts.push(pattern),
                        Err(message) => fields.problem(&field, message),
                    }
                }
            }
            "direction" | "route" => {}
            other => fields.problem(
                &field,
                format!(
                    "unknown metadata `{other}` for bindings.wasm (known: {})",
                    METADATA_NAMES.join(", ")
                ),
            ),
        }
    }
    match url.as_deref() {
        None => fields.problem_of(
            ProblemKind::MissingField,
            "spec.metadata",
            "missing required metadata `url`",
        ),
        Some("") => fields.problem("spec.metadata", "metadata `url` is empty"),
        Some(_) => {}
    }
    if fields.has_problems() {
        return None;
    }
    let function = FunctionConfig {
        source: ModuleSource::Url(url?),
        hash,
        method: None,
        wit: None,
        abi: Abi::WasiCommand,
        pool: None,
        transport: Transport::Payload,
        imports: Vec::new(),
        outbound_http,
        wasi: WasiConfig::default(),
        limits: LimitsConfig::default(),
        event_format: EventFormat::default(),
        strict_sandbox,
    };
    Some(Entry {
        id: name?.to_string(),
        file: path.to_path_buf(),
        kind: EntryKind::Function(Box::new(function)),
        meta: None,
    })
}

/// Dapr names its components with Kubernetes' DNS labels, which never
/// contain the `:` of Wippy ids, so the two never collide.
pub(super) fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_binding_parses() {
        let document: Value = serde_norway::from_str(
            r#"
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: wasm
spec:
  type: bindings.wasm
  version: v1
  metadata:
  - name: url
    value: "file://uppercase.wasm"
  - name: direction
    value: "output"
  - name: strictSandbox
    value: true
"#,
        )
        .unwrap();
        assert!(is_dapr_component(&document));
        let mut findings = Findings::default();
        let entry = parse_binding(Path::new("c.yaml"), &document, &[], &mut findings).unwrap();
        assert!(findings.problems.is_empty(), "{:?}", findings.problems);
        assert_eq!(entry.id, "wasm");
        assert_eq!(entry.kind_name(), "bindings.wasm");
        let function = entry.function().unwrap();
        assert!(function.strict_sandbox);
        assert_eq!(function.abi, Abi::WasiCommand);
        assert!(!function.outbound_http.granted, "no hosts: no HTTP");
    }

    #[test]
    fn allowed_outbound_hosts_are_wafers_own_metadata() {
        let document: Value = serde_norway::from_str(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: http\nspec:\n  type: bindings.wasm\n  metadata:\n  - name: url\n    value: file://main.wasm\n  - name: allowedOutboundHosts\n    value: \"http://127.0.0.1:8080, https://*.example.com\"\n",
        )
        .unwrap();
        let mut findings = Findings::default();
        let entry = parse_binding(Path::new("c.yaml"), &document, &[], &mut findings).unwrap();
        assert!(findings.problems.is_empty(), "{:?}", findings.problems);
        let outbound = &entry.function().unwrap().outbound_http;
        assert!(outbound.granted);
        assert_eq!(outbound.source, HostsSource::DaprMetadata);
        assert_eq!(outbound.refusal("https", "api.example.com", None), None);
        assert_eq!(
            outbound.refusal("http", "127.0.0.1", Some(9)),
            Some("not in the component's metadata allowedOutboundHosts")
        );
    }

    #[test]
    fn names_with_a_colon_and_empty_urls_are_refused() {
        let document: Value = serde_norway::from_str(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: \"app:f\"\nspec:\n  type: bindings.wasm\n  metadata:\n  - name: url\n    value: \"\"\n",
        )
        .unwrap();
        let mut findings = Findings::default();
        assert!(parse_binding(Path::new("c.yaml"), &document, &[], &mut findings).is_none());
        let fields: Vec<_> = findings
            .problems
            .iter()
            .map(|p| p.field.clone().unwrap())
            .collect();
        assert_eq!(fields, ["metadata.name", "spec.metadata"]);
    }

    #[test]
    fn metadata_given_twice_is_a_problem() {
        let document: Value = serde_norway::from_str(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: f\nspec:\n  type: bindings.wasm\n  metadata:\n  - name: url\n    value: file://a.wasm\n  - name: url\n    value: file://b.wasm\n",
        )
        .unwrap();
        let mut findings = Findings::default();
        assert!(parse_binding(Path::new("c.yaml"), &document, &[], &mut findings).is_none());
        let problem = &findings.problems[0];
        assert_eq!(problem.kind, ProblemKind::DuplicateKey);
        assert_eq!(problem.field.as_deref(), Some("spec.metadata[1]"));
        assert!(
            problem.message.contains("spec.metadata[0]"),
            "{}",
            problem.message
        );
    }
}
