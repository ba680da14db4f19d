//! Errors: registry problems (what `wafer check` lists) and call errors.
//!
//! A registry [`Problem`] keeps *where* apart from *what*: the file, the
//! entry and the field, each optional, then the reason. Loading collects every
//! problem before returning, so one run shows every mistake.
//!
//! A call [`Error`] tells apart what the caller did wrong (unknown function,
//! bad arguments), what the guest did (trap, a limit it hit) and what went
//! wrong on the host. A guest's `result` error is *not* an [`Error`]: it is
//! data in the answer.

use std::fmt;
use std::path::PathBuf;

use crate::call::CommandOutput;
use crate::printable::escape_controls;
use crate::values::ValueError;
use crate::wasi::SandboxError;

/// A `Result` whose error is a call [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of thing is wrong in a registry: what a caller branches on
/// (`wafer check --json` prints it as `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemKind {
    /// A file or folder cannot be read.
    Unreadable,
    /// A file is larger than wafer reads, or a registry file expands (its
    /// YAML aliases) past the bound.
    TooLarge,
    /// A folder holds no registry files at all.
    Empty,
    /// Not valid YAML, or not shaped like a registry file.
    Syntax,
    /// An entry `kind` wafer does not know.
    UnknownKind,
    /// A field the entry's kind does not have (a typo, usually).
    UnknownField,
    /// A required field is missing.
    MissingField,
    /// A field's value has the wrong type or is out of range.
    InvalidValue,
    /// Two entries have the same id, or two components of one pipeline
    /// the same label.
    DuplicateId,
    /// A key appears twice in one YAML mapping, or a name twice in a Dapr
    /// component's metadata: one value would silently replace the other.
    DuplicateKey,
    /// A reference to an entry that is missing or of the wrong kind.
    Reference,
    /// A module's bytes do not match the entry's `hash`.
    HashMismatch,
    /// A module named by URL could not be fetched.
    Fetch,
    /// Not WebAssembly: WAT that does not parse, bytes that do not compile.
    InvalidModule,
    /// The module imports something wafer does not provide or grant.
    Import,
    /// The export to call is missing, or is not what the ABI needs.
    Export,
    /// The function's signature (its WIT) is invalid or cannot cross as
    /// JSON.
    Signature,
    /// The entry uses a feature that is accepted but not active yet.
    Inactive,
}

impl ProblemKind {
    /// The kind's name in `snake_case`, as `wafer check --json` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Unreadable => "unreadable",
            ProblemKind::TooLarge => "too_large",
            ProblemKind::Empty => "empty",
            ProblemKind::Syntax => "syntax",
            ProblemKind::UnknownKind => "unknown_kind",
            ProblemKind::UnknownField => "unknown_field",
            ProblemKind::MissingField => "missing_field",
            ProblemKind::InvalidValue => "invalid_value",
            ProblemKind::DuplicateId => "duplicate_id",
            ProblemKind::DuplicateKey => "duplicate_key",
            ProblemKind::Reference => "reference",
            ProblemKind::HashMismatch => "hash_mismatch",
            ProblemKind::Fetch => "fetch",
            ProblemKind::InvalidModule => "invalid_module",
            ProblemKind::Import => "import",
            ProblemKind::Export => "export",
            ProblemKind::Signature => "signature",
            ProblemKind::Inactive => "inactive",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing wrong in a registry: its kind, where it is and why.
///
/// `Display` puts the context first, one line:
/// `registry/_index.yaml: entry app:hello: field hash: sha256 mismatch (...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What kind of problem it is.
    pub kind: ProblemKind,
    /// The file that declares the faulty entry, if any.
    pub file: Option<PathBuf>,
    /// The entry's id (`namespace:name`), or its name when the id is unknown.
    pub entry: Option<String>,
    /// The field at fault, dotted for nested fields (`pool.type`).
    pub field: Option<String>,
    /// Why it is wrong.
    pub message: String,
}

impl Problem {
    /// A problem of `kind` with a message and no location yet.
    pub fn new(kind: ProblemKind, message: impl Into<String>) -> Self {
        Problem {
            kind,
            file: None,
            entry: None,
            field: None,
            message: message.into(),
        }
    }

    /// Sets the file.
    pub fn in_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// Sets the entry.
    pub fn in_entry(mut self, entry: impl Into<String>) -> Self {
        self.entry = Some(entry.into());
        self
    }

    /// Sets the field.
    pub fn at_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

/// Names in a problem come from files anyone may write: control
/// characters in them are escaped ([`escape_controls`]).
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", escape_controls(&file.display().to_string()))?;
        }
        if let Some(entry) = &self.entry {
            write!(f, "entry {}: ", escape_controls(entry))?;
        }
        if let Some(field) = &self.field {
            write!(f, "field {}: ", escape_controls(field))?;
        }
        f.write_str(&escape_controls(&self.message))
    }
}

impl std::error::Error for Problem {}

/// Why a call failed.
///
/// Every variant names the function (`id`) so that a surface can print the
/// error alone on one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No entry with this id exists in the registry.
    #[error("no function {id} in the registry")]
    UnknownFunction {
        /// The id that was asked for.
        id: String,
    },
    /// The entry exists but is not a function that can be called.
    #[error("{id} is a {kind} entry, not a function")]
    NotAFunction {
        /// The entry's id.
        id: String,
        /// The entry's kind.
        kind: String,
    },
    /// The entry was refused when it was loaded or compiled.
    #[error("{}", join_problems(problems))]
    Refused {
        /// The function's id.
        id: String,
        /// Every reason it was refused.
        problems: Vec<Problem>,
    },
    /// The arguments do not match the function's signature.
    #[error("{id}: {detail}")]
    Arguments {
        /// The function's id.
        id: String,
        /// What is wrong and where, inside the arguments.
        detail: ValueError,
    },
    /// The guest trapped (`unreachable`, out-of-bounds access, stack
    /// overflow...). The instance is discarded.
    #[error("{id}: guest trapped: {message}")]
    Trap {
        /// The function's id.
        id: String,
        /// The trap and its backtrace, as wasmtime reports them.
        message: String,
        /// For a WASI program, what it wrote before (a panic message, say).
        output: Option<Box<CommandOutput>>,
    },
    /// The call ran longer than `limits.max_execution_ms`, or past the
    /// earlier deadline its caller set ([`crate::Function::invoke_until`]),
    /// and was stopped.
    #[error("{id}: stopped {}", deadline_reached(*.by_caller, *.limit_ms))]
    DeadlineExceeded {
        /// The function's id.
        id: String,
        /// `limits.max_execution_ms`.
        limit_ms: u64,
        /// Whether the caller's deadline, earlier than the limit, was hit.
        by_caller: bool,
        /// For a WASI program, what it wrote before it was stopped.
        output: Option<Box<CommandOutput>>,
    },
    /// The guest asked for more linear memory than
    /// `limits.max_memory_bytes` and failed for it. The instance is
    /// discarded.
    #[error(
        "{id}: stopped at limits.max_memory_bytes = {limit_bytes} bytes (the guest asked for more memory)"
    )]
    MemoryLimit {
        /// The function's id.
        id: String,
        /// The limit that was hit.
        limit_bytes: u64,
        /// For a WASI program, what it wrote before it failed.
        output: Option<Box<CommandOutput>>,
    },
    /// A WASI program wrote more than `limits.max_output_bytes` to stdout
    /// and stderr together and was stopped; `output` holds the first bytes.
    #[error("{id}: stopped at limits.max_output_bytes = {limit_bytes} bytes of output")]
    OutputLimit {
        /// The function's id.
        id: String,
        /// The limit that was hit.
        limit_bytes: u64,
        /// What the program wrote up to the limit.
        output: Box<CommandOutput>,
    },
    /// The guest's WASI world could not be set up: a required environment
    /// variable is missing, a mount cannot be opened. Nothing ran.
    #[error("{id}: {detail}")]
    Sandbox {
        /// The function's id.
        id: String,
        /// What is missing.
        detail: SandboxError,
    },
    /// The input's form does not fit the function's ABI: component values
    /// for a WASI program, a program's stdin for a typed function.
    #[error("{id}: {message}")]
    Unsupported {
        /// The function's id.
        id: String,
        /// What was asked, and what to do instead.
        message: String,
    },
    /// The engine was interrupted (Ctrl-C, shutdown) while the guest ran.
    #[error("{id}: interrupted")]
    Interrupted {
        /// The function's id.
        id: String,
    },
    /// The function's pool is full: its queue of waiting calls, or the
    /// engine's instance slots. Retry later; nothing ran.
    #[error("{id}: pool full: {reason}")]
    PoolFull {
        /// The function's id.
        id: String,
        /// Which bound was reached.
        reason: String,
    },
    /// The guest broke its side of the ABI: a result that does not fit its
    /// declared type, a missing export.
    #[error("{id}: {message}")]
    Abi {
        /// The function's id.
        id: String,
        /// What the guest did wrong.
        message: String,
    },
    /// Something failed on the host side (I/O, instantiation).
    #[error("{id}: {message}")]
    Host {
        /// The function's id.
        id: String,
        /// What failed.
        message: String,
    },
    /// A program's output passed through to the host's own stdout or
    /// stderr could not be written (a full disk, a closed pipe); the
    /// program was stopped, as a native one would be.
    #[error("{id}: cannot write the program's output: {source}")]
    Write {
        /// The function's id.
        id: String,
        /// The host stream's error; a closed pipe is `BrokenPipe`.
        #[source]
        source: std::io::Error,
    },
}

/// The engine could not be built, or WASI could not be linked: the host
/// cannot run wafer at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the engine: {message}")]
pub struct EngineError {
    /// What wasmtime reported.
    pub message: String,
}

impl From<wasmtime::Error> for EngineError {
    fn from(error: wasmtime::Error) -> Self {
        EngineError {
            message: format!("{error:#}"),
        }
    }
}

/// Condenses a multi-line parser diagnostic (message, `--> file:line:col`,
/// source snippet) to one line: the message and where.
pub(crate) fn one_line(diagnostic: &str) -> String {
    let mut lines = diagnostic.lines().map(str::trim).filter(|l| !l.is_empty());
    let message = lines.next().unwrap_or_default().to_string();
    match lines.find_map(|l| l.strip_prefix("--> ")) {
        Some(location) => format!("{message} (at {location})"),
        None => message,
    }
}

fn join_problems(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("; ")
}

impl Error {
    /// The id of the function the call was for.
    pub fn function_id(&self) -> &str {
        match self {
            Error::UnknownFunction { id }
            | Error::NotAFunction { id, .. }
            | Error::Refused { id, .. }
            | Error::Arguments { id, .. }
            | Error::Trap { id, .. }
            | Error::DeadlineExceeded { id, .. }
            | Error::MemoryLimit { id, .. }
            | Error::OutputLimit { id, .. }
            | Error::Sandbox { id, .. }
            | Error::Unsupported { id, .. }
            | Error::Interrupted { id }
            | Error::PoolFull { id, .. }
            | Error::Abi { id, .. }
            | Error::Host { id, .. }
            | Error::Write { id, .. } => id,
        }
    }

    /// What kind of failure it is: what surfaces branch on (exit codes,
    /// HTTP statuses) and what the metrics count.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::UnknownFunction { .. } => ErrorKind::UnknownFunction,
            Error::NotAFunction { .. } => ErrorKind::NotAFunction,
            Error::Refused { .. } => ErrorKind::Refused,
            Error::Arguments { .. } | Error::Unsupported { .. } => ErrorKind::BadInput,
            Error::Sandbox { .. } => ErrorKind::Sandbox,
            Error::Trap { .. } => ErrorKind::Trap,
            Error::DeadlineExceeded { .. } => ErrorKind::TimeLimit,
            Error::MemoryLimit { .. } => ErrorKind::MemoryLimit,
            Error::OutputLimit { .. } => ErrorKind::OutputLimit,
            Error::Interrupted { .. } => ErrorKind::Interrupted,
            Error::PoolFull { .. } => ErrorKind::PoolFull,
            Error::Abi { .. } => ErrorKind::Abi,
            Error::Host { .. } | Error::Write { .. } => ErrorKind::Host,
        }
    }

    /// What a WASI program wrote before it failed, when it failed after
    /// running (a limit, a trap).
    pub fn command_output(&self) -> Option<&CommandOutput> {
        match self {
            Error::OutputLimit { output, .. } => Some(output),
            Error::Trap { output, .. }
            | Error::DeadlineExceeded { output, .. }
            | Error::MemoryLimit { output, .. } => output.as_deref(),
            _ => None,
        }
    }

    /// Attaches what a WASI program wrote to an error that can carry it.
    pub(crate) fn with_output(mut self, written: CommandOutput) -> Self {
        if let Error::Trap { output, .. }
        | Error::DeadlineExceeded { output, .. }
        | Error::MemoryLimit { output, .. } = &mut self
        {
            *output = Some(Box::new(written));
        }
        self
    }
}

/// How [`Error::DeadlineExceeded`] says which deadline stopped the call.
fn deadline_reached(by_caller: bool, limit_ms: u64) -> String {
    if by_caller {
        "at its caller's deadline".into()
    } else {
        format!("after limits.max_execution_ms = {limit_ms} ms")
    }
}

/// What kind of failure a call [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No such entry.
    UnknownFunction,
    /// The entry is not a function.
    NotAFunction,
    /// The function was refused at load.
    Refused,
    /// The input does not fit: wrong arguments, or a form the ABI does not
    /// take.
    BadInput,
    /// The sandbox could not be set up (a required variable is missing).
    Sandbox,
    /// The guest trapped.
    Trap,
    /// `limits.max_execution_ms` stopped the call.
    TimeLimit,
    /// `limits.max_memory_bytes` refused the guest memory it asked for.
    MemoryLimit,
    /// `limits.max_output_bytes` stopped the program.
    OutputLimit,
    /// The engine was interrupted.
    Interrupted,
    /// The pool's queue or the engine's instance slots were full.
    PoolFull,
    /// The guest broke its side of the ABI.
    Abi,
    /// Something failed on the host side.
    Host,
}

impl ErrorKind {
    /// Every kind, in a stable order.
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::UnknownFunction,
        ErrorKind::NotAFunction,
        ErrorKind::Refused,
        ErrorKind::BadInput,
        ErrorKind::Sandbox,
        ErrorKind::Trap,
        ErrorKind::TimeLimit,
        ErrorKind::MemoryLimit,
        ErrorKind::OutputLimit,
        ErrorKind::Interrupted,
        ErrorKind::PoolFull,
        ErrorKind::Abi,
        ErrorKind::Host,
    ];

    /// The kind's name in `snake_case`: the `outcome` label of the call
    /// metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::UnknownFunction => "unknown_function",
            ErrorKind::NotAFunction => "not_a_function",
            ErrorKind::Refused => "refused",
            ErrorKind::BadInput => "bad_input",
            ErrorKind::Sandbox => "sandbox",
            ErrorKind::Trap => "trap",
            ErrorKind::TimeLimit => "time_limit",
            ErrorKind::MemoryLimit => "memory_limit",
            ErrorKind::OutputLimit => "output_limit",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::PoolFull => "pool_full",
            ErrorKind::Abi => "abi",
            ErrorKind::Host => "host",
        }
    }

    /// Whether the caller's input was at fault (the function or its
    /// arguments), not the guest or the host.
    pub fn is_input(self) -> bool {
        matches!(
            self,
            ErrorKind::UnknownFunction
                | ErrorKind::NotAFunction
                | ErrorKind::Refused
                | ErrorKind::BadInput
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_display_puts_context_first() {
        let p = Problem::new(ProblemKind::HashMismatch, "sha256 mismatch")
            .in_file("registry/_index.yaml")
            .in_entry("app:hello")
            .at_field("hash");
        assert_eq!(
            p.to_string(),
            "registry/_index.yaml: entry app:hello: field hash: sha256 mismatch"
        );
    }
}
