//! `wafer inspect FILE`: what a module or component imports and exports.

use std::path::PathBuf;

use anyhow::anyhow;
use serde_json::json;
use wafer::inspect::{BinaryKind, inspect};
use wafer::printable::escape_controls;

use super::{print_line, read_module};
use crate::exit::Failure;

/// Print a module's or component's imports, exports and WIT.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// A .wasm binary or .wat text (`-` for stdin).
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: InspectArgs) -> Result<(), Failure> {
    let bytes = read_module(&args.file)?;
    let description =
        inspect(&bytes).map_err(|e| Failure::input(anyhow!("{}: {e}", args.file.display())))?;
    let kind = match description.kind {
        BinaryKind::CoreModule => "core module",
        BinaryKind::Component => "component",
    };
    if args.json {
        let value = json!({
            "kind": kind,
            "imports": description.imports,
            "exports": description.exports,
            "wit": description.wit,
        });
        return print_line(&value.to_string());
    }
    let file = args.file.display().to_string();
    let mut out = format!("{}: {kind}\n", escape_controls(&file));
    for (title, items) in [
        ("imports", &description.imports),
        ("exports", &description.exports),
    ] {
        out.push_str(&format!("\n{title} ({}):\n", items.len()));
        for item in items {
            out.push_str(&format!("  {}\n", escape_controls(item)));
        }
    }
    if let Some(wit) = &description.wit {
        out.push_str("\nwit:\n");
        for line in wit.trim_end().lines() {
            out.push_str(&escape_controls(line));
            out.push('\n');
        }
    }
    print_line(out.trim_end())
}
