//! One module per subcommand: its arguments (clap) and its `run`.

pub mod call;
pub mod check;
pub mod hash;
pub mod inspect;

use std::path::Path;

use anyhow::Context;

use crate::exit::Failure;

/// A current-thread tokio runtime: one call needs no more, and starts
/// fastest.
pub fn tokio_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(Failure::failed)
}

/// Loads the registry at `path`, failing with exit code 2 when the path
/// itself cannot be read.
pub fn load_registry(path: &Path) -> Result<wafer::Registry, Failure> {
    wafer::Registry::load(path).map_err(Failure::input)
}

/// Reads a file, or stdin for `-`.
pub fn read_input(path: &Path) -> Result<Vec<u8>, Failure> {
    let bytes = if path == Path::new("-") {
        let mut buffer = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buffer).map(|_| buffer)
    } else {
        std::fs::read(path)
    };
    bytes.with_context(|| format!("cannot read {}", path.display())).map_err(Failure::input)
}

/// Writes `text` and a newline to stdout.
pub fn print_line(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").and_then(|()| out.flush()).context("cannot write to stdout").map_err(Failure::failed)
}
