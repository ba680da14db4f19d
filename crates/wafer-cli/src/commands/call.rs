//! `wafer call ID [ARG_JSON...]`: call one function and print its result.

use super::{FunctionArgs, print_line};
use crate::exit::Failure;

/// Call a function and print its result as JSON.
///
/// Each ARG is one JSON value (quote strings: '"text"'). A guest's
/// `{"err": …}` result is a successful call. Ctrl-C stops the guest.
///
/// Example: wafer call quickstart:add 2 40 --registry examples/quickstart
#[derive(clap::Args)]
pub struct CallArgs {
    #[command(flatten)]
    target: FunctionArgs,
    /// Pretty-print the result.
    #[arg(long)]
    pretty: bool,
}

pub fn run(args: CallArgs) -> Result<(), Failure> {
    let target = &args.target;
    let call_args = target.json_args()?;
    let runtime = target.runtime()?;
    let tokio = interruptible_runtime(&runtime)?;
    let result = tokio
        .block_on(runtime.call(&target.id, call_args))
        .map_err(call_failure)?;
    let text = if args.pretty {
        serde_json::to_string_pretty(&result)
    } else {
        serde_json::to_string(&result)
    };
    print_line(&text.expect("a JSON value always serializes"))
}

/// A runtime whose worker thread watches for Ctrl-C and interrupts the
/// engine, while `block_on` runs the call on this thread: a synchronous
/// guest holds this thread, and is still stopped at its next epoch tick.
pub fn interruptible_runtime(runtime: &wafer::Runtime) -> Result<tokio::runtime::Runtime, Failure> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(anyhow::anyhow!("cannot start the async runtime: {e}")))?;
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
