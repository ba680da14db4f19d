//! `wafer hash FILE`: the `sha256:<hex>` pin for a module file.

use std::path::PathBuf;

use super::{print_line, read_module};
use crate::exit::Failure;

/// Print a file's sha256 as a `function.wasm` entry's `hash` takes it.
#[derive(clap::Args)]
pub struct HashArgs {
    /// The file to hash (`-` for stdin).
    file: PathBuf,
}

pub fn run(args: HashArgs) -> Result<(), Failure> {
    let bytes = read_module(&args.file)?;
    print_line(&wafer::Sha256Hash::of(&bytes).to_string())
}
