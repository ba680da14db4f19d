//! `wafer call ID [ARG...]`: call one function and print its result.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::task::Poll;

use anyhow::{Context, anyhow};
use wafer::{CommandOutput, InputForm, Output};

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
    let tokio = interruptible_runtime(&runtime)?;
    let function = tokio
        .block_on(runtime.function(&target.id))
        .map_err(call_failure)?;
    let has_stdin = args.stdin.is_some() || args.stdin_file.is_some();
    if has_stdin && function.input_form() != InputForm::Program {
        return Err(Failure::input(anyhow!(
            "{}: --stdin and --stdin-file are for WASI programs; this is a typed function ({})",
            target.id,
            function.signature()
        )));
    }
    if args.pretty && function.input_form() == InputForm::Program {
        return Err(Failure::input(anyhow!(
            "{}: --pretty formats a typed function's JSON result; a WASI program's output is printed as it is",
            target.id
        )));
    }
    let input = target.input(&function, stdin(&args)?)?;
    match tokio.block_on(function.invoke(input)) {
        Ok(Output::Program(output)) => {
            write_output(&output)?;
            match output.exit_code {
                0 => Ok(()),
                status => Err(Failure::exit(status)),
            }
        }
        Ok(answer) => {
            let result = answer.into_json();
            let text = if args.pretty {
                serde_json::to_string_pretty(&result)
            } else {
                serde_json::to_string(&result)
            };
            print_line(&text.expect("a JSON value always serializes"))
        }
        Err(error) => {
            if let Some(output) = error.command_output() {
                write_output(output)?;
            }
            Err(call_failure(error))
        }
    }
}

/// A WASI program's stdin: --stdin, --stdin-file, or nothing.
fn stdin(args: &CallArgs) -> Result<Vec<u8>, Failure> {
    match (&args.stdin, &args.stdin_file) {
        (Some(text), _) => Ok(text.clone().into_bytes()),
        (None, Some(file)) => read_input(file, super::MAX_STDIN_FILE_BYTES),
        (None, None) => Ok(Vec::new()),
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
/// Ctrl-C is watched from when this returns, before anything is loaded.
pub fn interruptible_runtime(runtime: &wafer::Runtime) -> Result<tokio::runtime::Runtime, Failure> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(anyhow!("cannot start the async runtime: {e}")))?;
    let engine = runtime.engine().clone();
    let (watching, watched) = std::sync::mpsc::channel();
    tokio.spawn(async move {
        let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
        // The first poll installs the handler: from then on Ctrl-C is ours.
        let first = std::future::poll_fn(|cx| Poll::Ready(ctrl_c.as_mut().poll(cx))).await;
        let _ = watching.send(());
        let pressed = match first {
            Poll::Ready(outcome) => outcome,
            Poll::Pending => ctrl_c.await,
        };
        if pressed.is_ok() {
            engine.interrupt_all();
        }
    });
    watched
        .recv()
        .map_err(|_| Failure::failed(anyhow!("cannot watch for Ctrl-C")))?;
    Ok(tokio)
}

/// How a failed call ends the command, by its kind: exit 2 when its input
/// was at fault, 130 when it was interrupted, else 1.
pub fn call_failure(error: wafer::Error) -> Failure {
    let kind = error.kind();
    if kind == wafer::ErrorKind::Interrupted {
        Failure::interrupted(error)
    } else if kind.is_input() {
        Failure::input(error)
    } else {
        Failure::failed(error)
    }
}
