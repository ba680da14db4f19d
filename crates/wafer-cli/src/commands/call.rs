//! `wafer call ID [ARG_JSON...]`: call one function and print its result.

use std::path::PathBuf;

use anyhow::anyhow;
use serde_json::Value;

use super::{load_registry, print_line, read_input, tokio_runtime};
use crate::exit::Failure;

/// Call a function and print its result as JSON.
///
/// Each ARG is one JSON value (quote strings: '"text"'). A guest's
/// `{"err": …}` result is a successful call. Ctrl-C stops the guest.
///
/// Example: wafer call quickstart:add 2 40 --registry examples/quickstart
#[derive(clap::Args)]
pub struct CallArgs {
    /// The function's id: `namespace:name`, or a Dapr component's name.
    id: String,
    /// The arguments, one JSON value each.
    #[arg(value_name = "ARG_JSON", allow_negative_numbers = true)]
    args: Vec<String>,
    /// Read the arguments from a file holding a JSON array (`-` for stdin).
    #[arg(long, value_name = "FILE", conflicts_with = "args")]
    args_file: Option<PathBuf>,
    /// The registry: a folder walked for registry files, or one file.
    #[arg(long, short, value_name = "DIR", default_value = ".")]
    registry: PathBuf,
    /// Pretty-print the result.
    #[arg(long)]
    pretty: bool,
}

pub fn run(args: CallArgs) -> Result<(), Failure> {
    let call_args = parse_args(&args)?;
    let registry = load_registry(&args.registry)?;
    let others = registry.problems().iter().filter(|p| p.entry.as_deref() != Some(&args.id)).count();
    if others > 0 {
        tracing::warn!(problems = others, "The registry has problems in other entries; `wafer check` lists them.");
    }
    let runtime = wafer::Runtime::new(registry).map_err(Failure::failed)?;
    let result = tokio_runtime()?.block_on(async {
        tokio::select! {
            result = runtime.call(&args.id, call_args) => result.map_err(call_failure),
            _ = tokio::signal::ctrl_c() => Err(Failure::interrupted(anyhow!("{}: interrupted", args.id))),
        }
    })?;
    let text = if args.pretty { serde_json::to_string_pretty(&result) } else { serde_json::to_string(&result) };
    print_line(&text.expect("a JSON value always serializes"))
}

fn parse_args(args: &CallArgs) -> Result<Vec<Value>, Failure> {
    if let Some(file) = &args.args_file {
        let bytes = read_input(file)?;
        return match serde_json::from_slice(&bytes) {
            Ok(Value::Array(items)) => Ok(items),
            Ok(_) => Err(Failure::input(anyhow!("{}: expected a JSON array of arguments", file.display()))),
            Err(e) => Err(Failure::input(anyhow!("{}: not JSON: {e}", file.display()))),
        };
    }
    args.args
        .iter()
        .enumerate()
        .map(|(i, text)| {
            serde_json::from_str(text).map_err(|e| {
                Failure::input(anyhow!(
                    "args[{i}]: `{text}` is not JSON ({e}); write strings with quotes: '\"{text}\"'"
                ))
            })
        })
        .collect()
}

fn call_failure(error: wafer::Error) -> Failure {
    let input_error = error.is_input_error();
    let error = anyhow::Error::new(error);
    if input_error { Failure::input(error) } else { Failure::failed(error) }
}
