//! `wafer call ID [ARG_JSON...]`: call one function and print its result.

use super::{FunctionArgs, print_line, tokio_runtime};
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
    let result = tokio_runtime()?.block_on(async {
        tokio::select! {
            result = runtime.call(&target.id, call_args) => result.map_err(call_failure),
            _ = tokio::signal::ctrl_c() => {
                Err(Failure::interrupted(wafer::Error::Interrupted { id: target.id.clone() }))
            }
        }
    })?;
    let text = if args.pretty {
        serde_json::to_string_pretty(&result)
    } else {
        serde_json::to_string(&result)
    };
    print_line(&text.expect("a JSON value always serializes"))
}

/// How a failed call ends the command: exit 2 when its input was at fault.
pub fn call_failure(error: wafer::Error) -> Failure {
    let input_error = error.is_input_error();
    let error = anyhow::Error::new(error);
    if input_error {
        Failure::input(error)
    } else {
        Failure::failed(error)
    }
}
