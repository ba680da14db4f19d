//! The typed form of registry entries: what each field means and its default.
//!
//! These docs double as the YAML reference. Field names are exactly the
//! seed systems' keys (Wippy's `_index.yaml`, Dapr's component files).

use std::path::PathBuf;

use serde::Deserialize;

use crate::hash::Sha256Hash;
use crate::limits::{CompileLimits, Limits};
use crate::wasi::{AddressPattern, OutboundHttp};

/// How a call crosses into the guest (`abi:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Abi {
    /// Typed call; arguments and results travel as JSON mapped onto WIT
    /// types. The default.
    #[default]
    Wit,
    /// A WASI program run to completion per call: stdin in, stdout out.
    WasiCommand,
    /// Benthos' message ABI (`benthos_wasm` host module).
    Benthos,
    /// Fluent Bit's filter ABI.
    Fluentbit,
    /// A wasi:http proxy component (exports `wasi:http/incoming-handler`),
    /// served as `wasmtime serve` serves it. What a function without
    /// `abi` and without `method` is.
    HttpProxy,
}

impl Abi {
    /// The name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Abi::Wit => "wit",
            Abi::WasiCommand => "wasi-command",
            Abi::Benthos => "benthos",
            Abi::Fluentbit => "fluentbit",
            Abi::HttpProxy => "http-proxy",
        }
    }
}

/// How HTTP requests map onto a call (`transport:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// A JSON body becomes the arguments. The default.
    #[default]
    Payload,
    /// The raw body is one string argument; the result becomes the response.
    WasiHttp,
}

/// The worker pool kind (`pool.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    /// A new instance for every call; nothing is kept between calls.
    Inline,
    /// No idle instances at start; grows on demand up to `max_size`.
    Lazy,
    /// `size` instances, `workers` calls at once, a queue of `buffer`.
    Static,
    /// Grows and shrinks between `min_size` and `max_size` with load.
    Adaptive,
}

/// A function's worker pool (`pool:`), with Wippy's fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// The pool kind.
    #[serde(rename = "type")]
    pub kind: PoolKind,
    /// `static`: instances kept.
    pub size: Option<u32>,
    /// `static`: calls running at once.
    pub workers: Option<u32>,
    /// `static`: calls waiting in the queue (default `workers` × 64).
    pub buffer: Option<u32>,
    /// `inline`, `lazy`, `adaptive`: most instances at once.
    pub max_size: Option<u32>,
    /// `adaptive`: fewest instances kept.
    pub min_size: Option<u32>,
    /// `lazy`: an instance idle this long is dropped.
    pub idle_timeout_ms: Option<u64>,
    /// `adaptive`: instantiate `min_size` instances at load.
    pub warm_start: Option<bool>,
    /// Recycle an instance after this many calls.
    pub max_calls: Option<u64>,
}

impl PoolConfig {
    /// A pool of `kind` with every other field at its default.
    pub fn of_kind(kind: PoolKind) -> PoolConfig {
        PoolConfig {
            kind,
            size: None,
            workers: None,
            buffer: None,
            max_size: None,
            min_size: None,
            idle_timeout_ms: None,
            warm_start: None,
            max_calls: None,
        }
    }
}

/// `max_size` of `inline` and `adaptive` pools, and of the pool a function
/// gets when it declares none.
pub const DEFAULT_MAX_SIZE: u32 = 100;

/// Most instance slots an engine gets, and so the largest pool: each
/// reserves 4 GiB of address space.
pub const MAX_INSTANCE_SLOTS: u32 = 4000;

/// Per-function limits (`limits:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Stop a call that runs longer than this. Must be at least 1; the
    /// default is [`crate::limits::DEFAULT_MAX_EXECUTION_MS`].
    pub max_execution_ms: Option<u64>,
    /// Most bytes of linear memory an instance may grow to.
    pub max_memory_bytes: Option<u64>,
    /// Most bytes a call may write to stdout and stderr together.
    pub max_output_bytes: Option<u64>,
    /// The largest module accepted for compiling.
    pub max_module_bytes: Option<u64>,
    /// The most functions a module may define.
    pub max_functions: Option<u64>,
    /// The largest function body a module may hold.
    pub max_function_bytes: Option<u64>,
}

impl LimitsConfig {
    /// The limits calls run under: these values, defaults for the rest.
    pub fn limits(&self) -> Limits {
        Limits::with_defaults(
            self.max_execution_ms,
            self.max_memory_bytes,
            self.max_output_bytes,
        )
    }

    /// What is wrong with these values, field by field (`max_memory_bytes`):
    /// the one check for the registry's `limits` and `wafer exec`'s flags.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        [
            ("max_execution_ms", self.max_execution_ms),
            ("max_memory_bytes", self.max_memory_bytes),
            ("max_output_bytes", self.max_output_bytes),
            ("max_module_bytes", self.max_module_bytes),
            ("max_functions", self.max_functions),
            ("max_function_bytes", self.max_function_bytes),
        ]
        .into_iter()
        .filter(|&(_, value)| value == Some(0))
        .map(|(field, _)| {
            (
                field,
                "must be at least 1 (0 would fail every call)".to_string(),
            )
        })
        .collect()
    }

    /// What the module may hold: these values, defaults for the rest.
    pub fn compile_limits(&self) -> CompileLimits {
        let defaults = CompileLimits::default();
        CompileLimits {
            max_module_bytes: self.max_module_bytes.unwrap_or(defaults.max_module_bytes),
            max_functions: self.max_functions.unwrap_or(defaults.max_functions),
            max_function_bytes: self
                .max_function_bytes
                .unwrap_or(defaults.max_function_bytes),
        }
    }
}

/// What a guest sees of WASI (`wasi:`). Empty unless filled.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasiConfig {
    /// argv after the program name.
    #[serde(default)]
    pub args: Vec<String>,
    /// The guest's working directory; absolute.
    pub cwd: Option<String>,
    /// Environment variables mapped from `env.variable` entries.
    #[serde(default)]
    pub env: Vec<EnvMapping>,
    /// Host folders (`fs.directory` entries) mapped to guest paths.
    #[serde(default)]
    pub mounts: Vec<Mount>,
}

impl WasiConfig {
    /// Whether nothing at all is configured.
    pub fn is_empty(&self) -> bool {
        self == &WasiConfig::default()
    }
}

/// One `wasi.env` item: an `env.variable` entry seen by the guest as `name`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvMapping {
    /// The `env.variable` entry's id.
    pub id: String,
    /// The variable's name inside the guest.
    pub name: String,
    /// Fail the call when the variable has no value. Default `false`.
    #[serde(default)]
    pub required: bool,
}

/// One `wasi.mounts` item.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// The `fs.directory` entry's id.
    pub fs: String,
    /// The absolute path the guest sees it at.
    pub guest: String,
    /// Refuse writes. Default `false`.
    #[serde(default)]
    pub read_only: bool,
}

/// One `imports` item as written: a name (`wasi:sockets`,
/// `wasi:sockets/tcp@0.2.0`), or a name with the addresses it may use.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub(crate) enum ImportItem {
    /// `- wasi:sockets`
    Name(String),
    /// `- {name: wasi:sockets, allow: ["127.0.0.1:8080"]}`
    Grant(ImportGrantItem),
}

/// The mapping form of an `imports` item.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportGrantItem {
    pub name: String,
    #[serde(default)]
    pub allow: Vec<String>,
}

/// A capability an entry grants its guest (`imports:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportGrant {
    /// The WASI package or interface, as written.
    pub name: String,
    /// For `wasi:sockets`: the addresses the guest may bind or connect to
    /// (`IP:PORT`, either may be `*`). Empty denies every address.
    pub allow: Vec<AddressPattern>,
}

/// Where a function's module comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleSource {
    /// WAT text written inline in the registry.
    WatInline(String),
    /// A WAT file (`source: file://…`), relative to the declaring file.
    WatFile(PathBuf),
    /// A binary in an `fs.directory` entry (`fs` + `path`).
    FsPath {
        /// The `fs.directory` entry's id.
        fs: String,
        /// The file inside that folder (`/x.wasm` or `x.wasm`).
        path: String,
    },
    /// A binary fetched from a URL (`file://`, `http://`, `https://`).
    Url(String),
}

/// A function entry (`function.wat`, `function.wasm`, or a Dapr binding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionConfig {
    /// Where the module comes from.
    pub source: ModuleSource,
    /// The pinned sha256 of the module's bytes (required for `fs` + `path`).
    pub hash: Option<Sha256Hash>,
    /// The export to call: `func`, `iface#func` or `pkg:ns/iface#func`.
    pub method: Option<String>,
    /// WIT function declarations for a core module.
    pub wit: Option<String>,
    /// How the call crosses into the guest. Default [`Abi::Wit`].
    pub abi: Abi,
    /// The worker pool; `None` when not given.
    pub pool: Option<PoolConfig>,
    /// HTTP mapping. Default [`Transport::Payload`].
    pub transport: Transport,
    /// Capabilities that reach outside (`wasi:sockets`, `wasi:http`).
    pub imports: Vec<ImportGrant>,
    /// Whether the guest may make HTTP calls (`imports: [wasi:http]`), and
    /// to which hosts (`allowed_outbound_hosts`, in Spin's syntax).
    pub outbound_http: OutboundHttp,
    /// What the guest sees of WASI.
    pub wasi: WasiConfig,
    /// Limits.
    pub limits: LimitsConfig,
    /// How an `abi: fluentbit` filter takes and answers records.
    pub event_format: EventFormat,
    /// Dapr's `strictSandbox`: a deterministic world.
    pub strict_sandbox: bool,
}

/// How Fluent Bit's filter ABI passes records (`event_format`: `json` or
/// `msgpack`, in any case, as Fluent Bit compares them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventFormat {
    /// A NUL-terminated JSON object in, a JSON object out. The default.
    #[default]
    Json,
    /// A msgpack map in and out.
    Msgpack,
}

impl<'de> Deserialize<'de> for EventFormat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.to_ascii_lowercase().as_str() {
            "json" => Ok(EventFormat::Json),
            "msgpack" => Ok(EventFormat::Msgpack),
            _ => Err(serde::de::Error::custom(format!(
                "`{text}` is not an event format (json or msgpack)"
            ))),
        }
    }
}

impl FunctionConfig {
    /// The entry field that names the module: `source`, `path` or `url`.
    pub fn source_field(&self) -> &'static str {
        match self.source {
            ModuleSource::WatInline(_) | ModuleSource::WatFile(_) => "source",
            ModuleSource::FsPath { .. } => "path",
            ModuleSource::Url(_) => "url",
        }
    }
}

/// An `fs.directory` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryConfig {
    /// The host folder, resolved against the declaring file's folder.
    pub directory: PathBuf,
}

/// An `env.variable` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVariableConfig {
    /// The host environment variable to read.
    pub variable: String,
    /// The value used when the host variable is not set.
    pub default: Option<String>,
}
