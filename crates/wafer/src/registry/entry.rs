//! One registry entry: its id, where it was declared, and its kind-specific
//! configuration, parsed from a YAML mapping with every mistake reported.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::config::*;
use super::fields::Fields;
use super::http::{self, HttpEndpointConfig, HttpServiceConfig};
use super::nats::{self, NatsEndpointConfig};
use crate::error::{Problem, ProblemKind};
use crate::hash::Sha256Hash;
use crate::wasi::grants::{check_grant_name, split_import};
use crate::wasi::{AddressPattern, HostPattern, HostsSource, OutboundHttp, guest_path};

/// A registry entry that loaded without problems.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `namespace:name` for Wippy entries, `metadata.name` for Dapr ones.
    pub id: String,
    /// The file that declares it.
    pub file: PathBuf,
    /// The kind and its configuration.
    pub kind: EntryKind,
    /// The free-form `meta` map, if any.
    pub meta: Option<Value>,
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EntryKind {
    /// `fs.directory`: a host folder.
    Directory(DirectoryConfig),
    /// `env.variable`: a value from the host environment.
    EnvVariable(EnvVariableConfig),
    /// `function.wat`, `function.wasm` or a Dapr `bindings.wasm` component.
    Function(Box<FunctionConfig>),
    /// `http.service`: where a server listens (`wafer run`).
    HttpService(HttpServiceConfig),
    /// `http.endpoint`: a route and the function that answers it.
    HttpEndpoint(HttpEndpointConfig),
    /// `pipeline`: a Benthos-shaped stream, run by `wafer run`.
    Pipeline(PipelineEntry),
    /// `nats.endpoint`: a NATS subject and the function that answers its
    /// requests.
    NatsEndpoint(NatsEndpointConfig),
}

impl Entry {
    /// The kind as written in YAML (`function.wasm`, `bindings.wasm`...).
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            EntryKind::Directory(_) => "fs.directory",
            EntryKind::EnvVariable(_) => "env.variable",
            EntryKind::Function(_) if self.is_dapr() => "bindings.wasm",
            EntryKind::Function(f) => match &f.source {
                ModuleSource::WatInline(_) | ModuleSource::WatFile(_) => "function.wat",
                _ => "function.wasm",
            },
            EntryKind::HttpService(_) => "http.service",
            EntryKind::HttpEndpoint(_) => "http.endpoint",
            EntryKind::Pipeline(_) => "pipeline",
            EntryKind::NatsEndpoint(_) => "nats.endpoint",
        }
    }

    /// Whether the entry came from a Dapr component file (its id has no `:`).
    pub fn is_dapr(&self) -> bool {
        !self.id.contains(':')
    }

    /// A problem of `kind` with this entry's `field`, located by file and
    /// id.
    pub fn problem(
        &self,
        kind: ProblemKind,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Problem {
        Problem::new(kind, message)
            .in_file(&self.file)
            .in_entry(&self.id)
            .at_field(field)
    }

    /// The function configuration, if this is a function.
    pub fn function(&self) -> Option<&FunctionConfig> {
        match &self.kind {
            EntryKind::Function(f) => Some(f),
            _ => None,
        }
    }
}

/// A `pipeline` entry: its Benthos-shaped body (`input`, `pipeline`,
/// `output`, `on_error`) as written, `${VAR}` not yet replaced; the
/// pipeline engine (`wafer-pipeline`) reads and checks the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineEntry {
    /// The body's fields.
    pub body: Value,
}

/// The kinds a Wippy `_index.yaml` may declare.
pub(crate) const KINDS: &[&str] = &[
    "fs.directory",
    "env.variable",
    "function.wat",
    "function.wasm",
    "http.service",
    "http.endpoint",
    "pipeline",
    "nats.endpoint",
];

const COMMON: &[&str] = &["name", "kind", "meta"];
const FUNCTION_COMMON: &[&str] = &[
    "method",
    "wit",
    "abi",
    "pool",
    "transport",
    "imports",
    "wasi",
    "limits",
    "event_format",
    "allowed_outbound_hosts",
];

/// Fully qualifies a reference: `name` means `namespace:name`.
pub(crate) fn qualify(namespace: &str, reference: &str) -> String {
    if reference.contains(':') {
        reference.to_string()
    } else {
        format!("{namespace}:{reference}")
    }
}

/// Everything needed to read one Wippy entry.
pub(crate) struct EntrySite<'a> {
    pub namespace: &'a str,
    /// The folder of the declaring file; relative paths start here.
    pub base_dir: &'a Path,
}

/// The fields an entry kind accepts: the common ones, the function ones if
/// `function`, and `extra`.
fn known(extra: &[&'static str], function: bool) -> Vec<&'static str> {
    let mut all = COMMON.to_vec();
    if function {
        all.extend_from_slice(FUNCTION_COMMON);
    }
    all.extend_from_slice(extra);
    all
}

/// Parses the fields of a Wippy entry of `kind`. Returns `None` when a
/// problem was reported.
pub(crate) fn parse_kind(kind: &str, fields: &mut Fields, site: &EntrySite) -> Option<EntryKind> {
    let parsed = match kind {
        "fs.directory" => {
            fields.reject_unknown(kind, &known(&["directory"], false));
            let directory: Option<String> = fields.required("directory");
            let directory = directory.map(|d| site.base_dir.join(d));
            if let Some(directory) = &directory {
                match std::fs::metadata(directory) {
                    Ok(metadata) if metadata.is_dir() => {}
                    Ok(_) => fields.problem(
                        "directory",
                        format!("{} is not a folder", directory.display()),
                    ),
                    Err(e) => fields.problem(
                        "directory",
                        format!("cannot open {}: {e}", directory.display()),
                    ),
                }
            }
            directory.map(|directory| EntryKind::Directory(DirectoryConfig { directory }))
        }
        "env.variable" => {
            fields.reject_unknown(kind, &known(&["variable", "default"], false));
            let variable: Option<String> = fields.required("variable");
            let default: Option<String> = fields.optional("default");
            variable.map(|variable| EntryKind::EnvVariable(EnvVariableConfig { variable, default }))
        }
        "function.wat" => {
            fields.reject_unknown(kind, &known(&["source"], true));
            let source =
                fields
                    .required::<String>("source")
                    .map(|s| match s.strip_prefix("file://") {
                        Some(path) => ModuleSource::WatFile(site.base_dir.join(path)),
                        None => ModuleSource::WatInline(s),
                    });
            parse_function(fields, site, source, Some(None))
        }
        "function.wasm" => {
            fields.reject_unknown(kind, &known(&["fs", "path", "hash", "url"], true));
            let (source, hash) = parse_wasm_source(fields, site);
            parse_function(fields, site, source, hash)
        }
        "http.service" => {
            let own = [
                "addr",
                "lifecycle",
                "function_api",
                "dapr_api",
                "max_concurrent_requests",
                "max_request_ms",
                "max_body_bytes",
            ];
            fields.reject_unknown(kind, &known(&own, false));
            http::parse_service(fields)
        }
        "http.endpoint" => {
            let own = ["method", "path", "func", "service", "transport"];
            fields.reject_unknown(kind, &known(&own, false));
            http::parse_endpoint(fields, site)
        }
        "nats.endpoint" => {
            let own = ["urls", "subject", "queue", "func", "auth", "tls"];
            fields.reject_unknown(kind, &known(&own, false));
            nats::parse_endpoint(fields, site)
        }
        "pipeline" => {
            let body = ["input", "pipeline", "output", "on_error"];
            fields.reject_unknown(kind, &known(&body, false));
            Some(EntryKind::Pipeline(PipelineEntry {
                body: fields.subset(&body),
            }))
        }
        other => {
            fields.problem_of(
                ProblemKind::UnknownKind,
                "kind",
                format!("unknown kind `{other}` (known: {})", KINDS.join(", ")),
            );
            None
        }
    };
    parsed.filter(|_| !fields.has_problems())
}

fn parse_wasm_source(
    fields: &mut Fields,
    site: &EntrySite,
) -> (Option<ModuleSource>, Option<Option<Sha256Hash>>) {
    let hash = parse_hash(fields);
    let url: Option<String> = fields.optional("url");
    let fs: Option<String> = fields.optional("fs");
    let path: Option<String> = fields.optional("path");
    let source = match (url, fs, path) {
        (Some(url), None, None) => {
            if hash.as_ref().is_some_and(Option::is_none) && !fields.has("hash") {
                fields.problem_of(
                    ProblemKind::MissingField,
                    "hash",
                    "missing required field (sha256:<hex> of the module at `url`)",
                );
            }
            Some(ModuleSource::Url(url))
        }
        (None, Some(fs), Some(path)) => {
            if hash.as_ref().is_some_and(Option::is_none) && !fields.has("hash") {
                fields.problem_of(
                    ProblemKind::MissingField,
                    "hash",
                    "missing required field (sha256:<hex> of the module)",
                );
            }
            Some(ModuleSource::FsPath {
                fs: qualify(site.namespace, &fs),
                path,
            })
        }
        (Some(_), _, _) => {
            fields.problem("url", "give either `url` or `fs` + `path`, not both");
            None
        }
        (None, Some(_), None) => {
            fields.problem_of(
                ProblemKind::MissingField,
                "path",
                "missing required field (the module's file inside `fs`)",
            );
            None
        }
        (None, None, Some(_)) => {
            fields.problem_of(
                ProblemKind::MissingField,
                "fs",
                "missing required field (the fs.directory entry holding `path`)",
            );
            None
        }
        (None, None, None) => {
            fields.problem_of(
                ProblemKind::MissingField,
                "fs",
                "missing required field: give `fs` + `path` + `hash`, or `url`",
            );
            None
        }
    };
    (source, hash)
}

/// Checks each `imports` item's name and address patterns.
fn parse_imports(fields: &mut Fields, items: Vec<ImportItem>) -> Vec<ImportGrant> {
    let mut grants = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let (name, allow) = match item {
            ImportItem::Name(name) => (name, Vec::new()),
            ImportItem::Grant(grant) => (grant.name, grant.allow),
        };
        let field = format!("imports[{i}]");
        if split_import(&name).0 == "wasi:http" && !allow.is_empty() {
            fields.problem(
                &format!("{field}.allow"),
                "wasi:http takes its hosts from `allowed_outbound_hosts`",
            );
            continue;
        }
        if let Err(message) = check_grant_name(&name) {
            fields.problem(&field, message);
            continue;
        }
        let mut patterns = Vec::new();
        for text in &allow {
            match text.parse::<AddressPattern>() {
                Ok(pattern) => patterns.push(pattern),
                Err(message) => fields.problem(&format!("{field}.allow"), message),
            }
        }
        grants.push(ImportGrant {
            name,
            allow: patterns,
        });
    }
    grants
}

/// `imports: [wasi:http]` and `allowed_outbound_hosts`, each in Spin's
/// syntax; the hosts need the import.
fn parse_outbound_http(fields: &mut Fields, imports: &[ImportGrant]) -> OutboundHttp {
    let texts: Vec<String> = fields
        .optional("allowed_outbound_hosts")
        .unwrap_or_default();
    let mut hosts = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        match text.parse::<HostPattern>() {
            Ok(pattern) => hosts.push(pattern),
            Err(message) => fields.problem(&format!("allowed_outbound_hosts[{i}]"), message),
        }
    }
    let imports_http = imports
        .iter()
        .any(|grant| split_import(&grant.name).0 == "wasi:http");
    if !texts.is_empty() && !imports_http {
        fields.problem(
            "allowed_outbound_hosts",
            "lists hosts, but the entry does not import wasi:http: add `imports: [wasi:http]`",
        );
    }
    OutboundHttp {
        granted: imports_http,
        allowed_hosts: hosts,
        source: HostsSource::Entry,
    }
}

/// `wasi.cwd` and mount paths must be absolute; mount paths unique.
fn check_guest_paths(fields: &mut Fields, wasi: &mut WasiConfig) {
    if let Some(cwd) = &mut wasi.cwd {
        match guest_path(cwd) {
            Ok(normal) => *cwd = normal,
            Err(message) => fields.problem("wasi.cwd", message),
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, mount) in wasi.mounts.iter_mut().enumerate() {
        let field = format!("wasi.mounts[{i}].guest");
        match guest_path(&mount.guest) {
            Ok(normal) if !seen.insert(normal.clone()) => {
                fields.problem(&field, format!("`{}` is mounted twice", mount.guest))
            }
            Ok(normal) => mount.guest = normal,
            Err(message) => fields.problem(&field, message),
        }
    }
}

/// Pool sizes the engine can provide: at least 1, at most
/// [`MAX_INSTANCE_SLOTS`], and a floor no higher than the ceiling.
fn check_pool(fields: &mut Fields, pool: &PoolConfig) {
    for (field, value) in [
        ("pool.size", pool.size),
        ("pool.workers", pool.workers),
        ("pool.max_size", pool.max_size),
        ("pool.min_size", pool.min_size),
    ] {
        match value {
            Some(0) if field != "pool.min_size" => {
                fields.problem(field, "must be at least 1 (0 would refuse every call)")
            }
            Some(n) if n > MAX_INSTANCE_SLOTS => fields.problem(
                field,
                format!(
                    "{n} is more than the engine provides: {MAX_INSTANCE_SLOTS} instances at once"
                ),
            ),
            _ => {}
        }
    }
    let max = pool.max_size.unwrap_or(DEFAULT_MAX_SIZE);
    if let Some(min) = pool.min_size
        && min > max
    {
        fields.problem(
            "pool.min_size",
            format!(
                "{min} is above pool.max_size ({max}{})",
                if pool.max_size.is_none() {
                    ", its default"
                } else {
                    ""
                }
            ),
        );
    }
}

/// `Some(None)` when there is no hash, `None` when the hash is malformed.
fn parse_hash(fields: &mut Fields) -> Option<Option<Sha256Hash>> {
    match fields.optional::<String>("hash") {
        None if fields.has("hash") => None,
        None => Some(None),
        Some(text) => match text.parse::<Sha256Hash>() {
            Ok(hash) => Some(Some(hash)),
            Err(message) => {
                fields.problem("hash", message);
                None
            }
        },
    }
}

fn parse_function(
    fields: &mut Fields,
    site: &EntrySite,
    source: Option<ModuleSource>,
    hash: Option<Option<Sha256Hash>>,
) -> Option<EntryKind> {
    let method: Option<String> = fields.optional("method");
    // Without an export to call, a component is served as a wasi:http
    // proxy; its load says so when it is not one.
    let abi: Abi = fields.optional("abi").unwrap_or(if fields.has("method") {
        Abi::Wit
    } else {
        Abi::HttpProxy
    });
    if abi == Abi::Wit && method.is_none() && !fields.has("method") {
        fields.problem_of(
            ProblemKind::MissingField,
            "method",
            "missing required field (the export to call)",
        );
    }
    let wit: Option<String> = fields.optional("wit");
    let event_format: Option<EventFormat> = fields.optional("event_format");
    if event_format.is_some() && abi != Abi::Fluentbit {
        fields.problem(
            "event_format",
            "only an `abi: fluentbit` function has an event format",
        );
    }
    let pool: Option<PoolConfig> = fields.optional("pool");
    if let Some(pool) = &pool {
        check_pool(fields, pool);
    }
    let transport: Transport = fields.optional("transport").unwrap_or_default();
    let items: Vec<ImportItem> = fields.optional("imports").unwrap_or_default();
    let imports = parse_imports(fields, items);
    let outbound_http = parse_outbound_http(fields, &imports);
    let mut wasi: WasiConfig = fields.optional("wasi").unwrap_or_default();
    check_guest_paths(fields, &mut wasi);
    for mapping in &mut wasi.env {
        mapping.id = qualify(site.namespace, &mapping.id);
    }
    for mount in &mut wasi.mounts {
        mount.fs = qualify(site.namespace, &mount.fs);
    }
    let limits: LimitsConfig = fields.optional("limits").unwrap_or_default();
    for (field, message) in limits.problems() {
        fields.problem(&format!("limits.{field}"), message);
    }
    Some(EntryKind::Function(Box::new(FunctionConfig {
        source: source?,
        hash: hash?,
        method,
        wit,
        abi,
        pool,
        transport,
        imports,
        outbound_http,
        wasi,
        limits,
        event_format: event_format.unwrap_or_default(),
        strict_sandbox: false,
    })))
}
