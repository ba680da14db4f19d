//! What a guest sees of WASI: one [`Sandbox`] per function, turned into a
//! fresh WASI context for each instance.
//!
//! Nothing is granted unless the sandbox says so (see
//! [`WasiCtxBuilder::new`]'s defaults): stdin is empty, there are no
//! arguments beyond the program name, no environment, no files and no
//! network. An entry fills it from `wasi.args`, `wasi.env` (resolved from
//! `env.variable` entries each time an instance is created), `wasi.cwd`,
//! `wasi.mounts` (`fs.directory` entries at absolute guest paths, with
//! `read_only` enforced by WASI's own permissions) and the network grants
//! of `imports` ([`grants`]). Dapr's `strictSandbox` swaps clocks and
//! randomness for deterministic ones (`strict.rs`).
//!
//! The same sandbox serves WASI preview 1 core modules and preview 2
//! components: only the last step (`build_p1` or `build`) differs.

pub mod grants;
pub mod outbound_http;
pub(crate) mod output;
pub(crate) mod strict;

use std::path::PathBuf;

use bytes::Bytes;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

pub use grants::{AddressPattern, NetworkGrant};
pub use outbound_http::{DAPR_HOSTS_KEY, HostPattern, HostsSource, OutboundHttp};
pub use output::OutputMode;
use wasmtime_wasi::cli::StdoutStream;

/// The world one function's guest runs in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    /// The guest's argv\[0\].
    pub program_name: String,
    /// Arguments after the program name, before the call's own.
    pub args: Vec<String>,
    /// Environment variables.
    pub env: Vec<EnvBinding>,
    /// The guest's working directory: preview 2's `initial-cwd`, and `PWD`
    /// in the environment (where Go's wasip1 runtime looks). wasi-libc
    /// (Rust, C) reads neither yet and starts at `/`.
    pub cwd: Option<String>,
    /// Host folders the guest may open.
    pub mounts: Vec<MountGrant>,
    /// Deterministic clocks, randomness and sleeps (Dapr's `strictSandbox`).
    pub strict: bool,
    /// What the guest may reach over the network.
    pub network: NetworkGrant,
    /// The hosts the guest may call through wasi:http.
    pub http: OutboundHttp,
}

/// One environment variable of the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvBinding {
    /// Its name inside the guest.
    pub name: String,
    /// Where its value comes from.
    pub source: EnvSource,
}

/// Where an environment variable's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSource {
    /// A fixed value (`wafer exec --env K=V`).
    Value(String),
    /// A host environment variable, read when an instance is created
    /// (an `env.variable` entry).
    Host {
        /// The `env.variable` entry's id, for errors.
        entry: String,
        /// The host variable.
        variable: String,
        /// The value when the host variable is not set.
        default: Option<String>,
        /// Whether a missing value fails the call.
        required: bool,
    },
}

/// A host folder the guest may open at `guest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountGrant {
    /// The host folder.
    pub host: PathBuf,
    /// The absolute path the guest opens it at.
    pub guest: String,
    /// Refuse every write, create and delete.
    pub read_only: bool,
}

/// The guest's stdin.
#[derive(Debug, Clone)]
pub enum Stdin {
    /// These bytes, then end of file.
    Bytes(Bytes),
    /// The host process's own stdin (`wafer exec`).
    Inherit,
}

/// Why a sandbox could not be set up for a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    /// A `required` environment variable has no value. The value of other
    /// variables is never part of an error.
    #[error(
        "required environment variable {name} (from {entry}: host variable {variable}) is not set"
    )]
    MissingEnv {
        /// The name inside the guest.
        name: String,
        /// The `env.variable` entry.
        entry: String,
        /// The host variable.
        variable: String,
    },
    /// A mounted folder cannot be opened.
    #[error("cannot mount {host} at {guest}: {reason}")]
    Mount {
        /// The host folder.
        host: PathBuf,
        /// The guest path.
        guest: String,
        /// What the OS said.
        reason: String,
    },
}

/// A program's argv\[0\], as Dapr names it: the last segment of its file
/// path or URL path, without `.wasm`. `None` when that is empty.
pub fn program_name(path: &str) -> Option<String> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let name = name.strip_suffix(".wasm").unwrap_or(name);
    (!name.is_empty()).then(|| name.to_string())
}

/// A guest path as the guest will see it: absolute, without `.`
/// segments, repeated or trailing slashes. A `..` segment is refused: the
/// guest path of a mount or a working directory must say where it is.
///
/// ```
/// use wafer::wasi::guest_path;
/// assert_eq!(guest_path("/data//in/./").unwrap(), "/data/in");
/// assert!(guest_path("/x/../..").is_err());
/// assert!(guest_path("data").is_err());
/// ```
///
/// # Errors
///
/// When the path is relative or holds `..`, saying which.
pub fn guest_path(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` must be an absolute guest path"));
    }
    let mut normal = String::new();
    for segment in path.split('/').filter(|s| !s.is_empty() && *s != ".") {
        if segment == ".." {
            return Err(format!("`{path}` must not contain `..`"));
        }
        normal.push('/');
        normal.push_str(segment);
    }
    if normal.is_empty() {
        normal.push('/');
    }
    Ok(normal)
}

impl Sandbox {
    /// Whether the sandbox grants nothing: a guest needs no context of its
    /// own until it first touches WASI.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
            && self.env.is_empty()
            && self.cwd.is_none()
            && self.mounts.is_empty()
            && !self.strict
            && self.network.is_none()
    }

    /// A builder for an instance that serves many calls (a typed function,
    /// a message processor): nothing on stdin, stdout and stderr to the
    /// guest's logs.
    pub(crate) fn instance_builder(
        &self,
        host: &crate::host::HostState,
    ) -> Result<WasiCtxBuilder, SandboxError> {
        let (stdout, stderr) = host.log_streams();
        self.builder(&[], &Stdin::Bytes(Bytes::new()), stdout, stderr)
    }

    /// A WASI context builder for one instance: argv is the program name,
    /// the sandbox's args, then `call_args`.
    pub(crate) fn builder(
        &self,
        call_args: &[String],
        stdin: &Stdin,
        stdout: impl StdoutStream + 'static,
        stderr: impl StdoutStream + 'static,
    ) -> Result<WasiCtxBuilder, SandboxError> {
        let mut builder = WasiCtxBuilder::new();
        builder
            .arg(&self.program_name)
            .args(&self.args)
            .args(call_args)
            .stdout(stdout)
            .stderr(stderr);
        match stdin {
            Stdin::Bytes(bytes) => {
                builder.stdin(MemoryInputPipe::new(bytes.clone()));
            }
            Stdin::Inherit => {
                builder.inherit_stdin();
            }
        }
        for binding in &self.env {
            if let Some(value) = binding.resolve()? {
                builder.env(&binding.name, value);
            }
        }
        if let Some(cwd) = &self.cwd {
            // Preview 2 has `initial-cwd`; guests without it (Go's wasip1
            // runtime) take their working directory from `PWD`.
            builder.initial_cwd(cwd);
            if !self.env.iter().any(|binding| binding.name == "PWD") {
                builder.env("PWD", cwd);
            }
        }
        for mount in &self.mounts {
            let perms = if mount.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            builder
                .preopened_dir(&mount.host, &mount.guest, perms)
                .map_err(|e| SandboxError::Mount {
                    host: mount.host.clone(),
                    guest: mount.guest.clone(),
                    reason: format!("{e:#}"),
                })?;
        }
        self.network.apply(&mut builder);
        if self.strict {
            strict::apply(&mut builder);
        }
        Ok(builder)
    }
}

impl EnvBinding {
    /// The value now; `None` when an optional variable is unset.
    fn resolve(&self) -> Result<Option<String>, SandboxError> {
        match &self.source {
            EnvSource::Value(value) => Ok(Some(value.clone())),
            EnvSource::Host {
                entry,
                variable,
                default,
                required,
            } => match std::env::var(variable).ok().or_else(|| default.clone()) {
                Some(value) => Ok(Some(value)),
                None if *required => Err(SandboxError::MissingEnv {
                    name: self.name.clone(),
                    entry: entry.clone(),
                    variable: variable.clone(),
                }),
                None => Ok(None),
            },
        }
    }
}
