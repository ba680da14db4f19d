//! `wafer call ID [ARG...]`: call one function and print its result.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use wafer::{CommandInput, CommandOutput, Function};

use super::{FunctionArgs, print_line, read_input};
use crate::exit::Failure;

/// Call a function and print its result.
///
/// A typed function takes one JSON value per ARG (quote strings:
/// '"text"') and prints its result as JSON; a guest's `{"err": …}` result
/// is a successful call.
///
/// A WASI program (abi: wasi-command, Dapr bindings) gets each ARG appended
/// to its argv as written, its stdin from --stdin or --stdin-file, prints
/// its stdout unchanged (stderr to stderr) and exits with its exit status.
///
/// Ctrl-C stops the guest.
///
/// Example: wafer call quickstart:add 2 40 --registry examples/quickstart
#[derive(clap::Args)]
pub struct CallArgs {
    #[command(flatten)]
    target: FunctionArgs,
    /// Pretty-print a typed function's result.
    #[arg(long)]
    pretty: bool,
    /// A WASI program's stdin, as this text.
    #[arg(long, value_name = "TEXT", conflicts_with = "stdin_file")]
    stdin: Option<String>,
    /// A WASI program's stdin, from this file (`-`: wafer's own stdin).
    #[arg(long, value_name = "FILE")]
    stdin_file: Option<PathBuf>,
}

pub fn run(args: CallArgs) -> Result<(), Failure> {
    let target = &args.target;
    let runtime = target.runtime()?;
    let function = runtime.function(&target.id).map_err(call_failure)?;
    if function.is_command() {
        return run_program(&runtime, &function, &args);
    }
    if args.stdin.is_some() || args.stdin_file.is_some() {
        return Err(Failure::input(anyhow!(
            "{}: --stdin and --stdin-file are for WASI programs; this is a typed function ({})",
            target.id,
            function.signature()
        )));
    }
    let call_args = target.json_args()?;
    let tokio = interruptible_runtime(&runtime)?;
    let result = tokio
        .block_on(function.call_json(call_args))
        .map_err(call_failure)?;
    let text = if args.pretty {
        serde_json::to_string_pretty(&result)
    } else {
        serde_json::to_string(&result)
    };
    print_line(&text.expect("a JSON value always serializes"))
}

fn run_program(
    runtime: &wafer::Runtime,
    function: &Function,
    args: &CallArgs,
) -> Result<(), Failure> {
    let stdin = match (&args.stdin, &args.stdin_file) {
        (Some(text), _) => text.clone().into_bytes(),
        (None, Some(file)) => read_input(file)?,
        (None, None) => Vec::new(),
    };
    let input = CommandInput::new()
        .args(args.target.program_args()?)
        .stdin(stdin);
    let tokio = interruptible_runtime(runtime)?;
    match tokio.block_on(function.run(input)) {
        Ok(output) => write_output(&output),
        Err(error) => match error.command_output() {
            Some(output) => {
                write_output(output)?;
                match error {
                    wafer::Error::Exit { .. } => Err(Failure::exit(output.exit_code)),
                    other => Err(Failure::failed(other)),
                }
            }
            None => Err(call_failure(error)),
        },
    }
}

/// Writes a program's stdout and stderr bytes as they are.
pub fn write_output(output: &CommandOutput) -> Result<(), Failure> {
    let written = std::io::stdout()
        .lock()
        .write_all(&output.stdout)
        .and_then(|()| std::io::stdout().flush())
        .and_then(|()| std::io::stderr().lock().write_all(&output.stderr));
    written
        .context("cannot write the program's output")
        .map_err(Failure::failed)
}

/// A runtime whose worker thread watches for Ctrl-C and interrupts the
/// engine, while `block_on` runs the call on this thread: a synchronous
/// guest holds this thread, and is still stopped at its next epoch tick.
pub fn interruptible_runtime(runtime: &wafer::Runtime) -> Result<tokio::runtime::Runtime, Failure> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(anyhow!("cannot start the async runtime: {e}")))?;
    let engine = runtime.engine().clone();
    tokio.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            engine.interrupt_all();
        }
    });
    Ok(tokio)
}

/// How a failed call ends the command: exit 2 when its input was at fault,
/// 130 when it was interrupted.
pub fn call_failure(error: wafer::Error) -> Failure {
    if matches!(error, wafer::Error::Interrupted { .. }) {
        return Failure::interrupted(error);
    }
    let input_error = error.is_input_error();
    let error = anyhow::Error::new(error);
    if input_error {
        Failure::input(error)
    } else {
        Failure::failed(error)
    }
}
