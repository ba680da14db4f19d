//! WASI programs (`abi: wasi-command`): a fresh instance per call, run to
//! completion, its output captured under the entry's limits.

use bytes::Bytes;
use serde_json::{Value, json};

use super::Shared;
use crate::abi::wasi_command::CommandProgram;
use crate::error::{Error, Result};
use crate::host::HostState;
use crate::limits::{Stopped, bounded};
use crate::pools::{InstancePool, PoolPolicy};
use crate::wasi::output::{Output, OutputLimitReached, Stream};
use crate::wasi::{OutputMode, Stdin};

/// What one run of a WASI program gets.
#[derive(Debug, Clone)]
pub struct CommandInput {
    /// Appended to argv after the program name and the entry's `wasi.args`.
    pub args: Vec<String>,
    /// The program's stdin.
    pub stdin: Stdin,
    /// Whether stdout and stderr are captured (the default) or passed
    /// through to the host's own.
    pub output: OutputMode,
}

impl Default for CommandInput {
    fn default() -> Self {
        CommandInput {
            args: Vec::new(),
            stdin: Stdin::Bytes(Bytes::new()),
            output: OutputMode::Capture,
        }
    }
}

impl CommandInput {
    /// No arguments, empty stdin, output captured.
    pub fn new() -> Self {
        CommandInput::default()
    }

    /// Appends `args` to argv.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets the bytes the program reads from stdin.
    pub fn stdin(mut self, bytes: impl Into<Bytes>) -> Self {
        self.stdin = Stdin::Bytes(bytes.into());
        self
    }

    /// The JSON form of a call: strings are arguments as they are, other
    /// values their JSON text.
    pub fn from_json_args(args: Vec<Value>) -> Self {
        let args = args.into_iter().map(|arg| match arg {
            Value::String(text) => text,
            other => other.to_string(),
        });
        CommandInput::new().args(args)
    }
}

/// What a WASI program wrote, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Everything written to stdout (up to `max_output_bytes`).
    pub stdout: Vec<u8>,
    /// Everything written to stderr (sharing that cap).
    pub stderr: Vec<u8>,
    /// The exit status: `proc_exit`'s code for preview 1 programs, 0 or 1
    /// for preview 2 ones; 1 for a program that trapped or was stopped.
    pub exit_code: i32,
}

impl CommandOutput {
    /// `{"stdout": …, "stderr": …, "exit_code": n}`, each stream a string
    /// when it is UTF-8 and an array of bytes otherwise, so nothing is lost.
    pub fn to_json(&self) -> Value {
        json!({
            "stdout": bytes_json(&self.stdout),
            "stderr": bytes_json(&self.stderr),
            "exit_code": self.exit_code,
        })
    }
}

fn bytes_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_string()),
        Err(_) => Value::Array(bytes.iter().map(|&b| Value::from(b)).collect()),
    }
}

/// A WASI program and the pool that bounds how many run at once.
pub(super) struct Command {
    program: CommandProgram,
    /// Counts and bounds concurrent runs; instances are never kept.
    pub pool: InstancePool<()>,
}

impl Command {
    pub fn new(program: CommandProgram, policy: PoolPolicy) -> Command {
        Command {
            program,
            pool: InstancePool::new(policy),
        }
    }

    pub async fn run(&self, shared: &Shared, input: CommandInput) -> Result<CommandOutput> {
        tokio::task::consume_budget().await;
        let _slot = self
            .pool
            .acquire()
            .await
            .map_err(|full| shared.pool_full(full))?;
        let output = Output::new(shared.limits.max_output_bytes, input.output);
        let mut builder = shared
            .sandbox
            .builder(
                &input.args,
                &input.stdin,
                output.stream(Stream::Stdout),
                output.stream(Stream::Stderr),
            )
            .map_err(|detail| Error::Sandbox {
                id: shared.id.to_string(),
                detail,
            })?;
        let mut host = HostState::new(
            shared.id.clone(),
            shared.interrupted.clone(),
            &shared.limits,
        );
        if self.program.is_p1() {
            host.set_wasi_p1(&mut builder);
        } else {
            host.set_wasi(&mut builder);
        }
        let deadline = host.deadline;
        let mut store = host.into_store(self.program.engine(), true);
        let _live = self.pool.created();
        let outcome = bounded(self.program.run(&mut store), deadline, &shared.interrupted).await;
        let written = output.take();
        let memory_refused = store.data().memory.was_refused();
        let finished = |exit_code| CommandOutput {
            stdout: written.stdout,
            stderr: written.stderr,
            exit_code,
        };
        match outcome {
            Err(Stopped::Interrupted) => Err(shared.interrupted_error()),
            Err(Stopped::Deadline) => Err(shared.deadline_exceeded().with_output(finished(1))),
            Ok(Ok(0)) => Ok(finished(0)),
            Ok(Ok(code)) => Err(Error::Exit {
                id: shared.id.to_string(),
                output: Box::new(finished(code)),
            }),
            Ok(Err(e)) if written.exceeded || e.is::<OutputLimitReached>() => {
                Err(Error::OutputLimit {
                    id: shared.id.to_string(),
                    limit_bytes: shared.limits.max_output_bytes,
                    output: Box::new(finished(1)),
                })
            }
            Ok(Err(e)) => Err(shared
                .call_error(e, memory_refused)
                .with_output(finished(1))),
        }
    }
}
