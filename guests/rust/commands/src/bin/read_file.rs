//! Prints the contents of the file at `argv[1]`, as they are; on error prints
//! the error to stderr and exits 1. Tests: preopened directories.

use std::io::Write;

fn main() {
    let path = std::env::args().nth(1).unwrap_or_default();
    match std::fs::read(&path) {
        Ok(bytes) => std::io::stdout().write_all(&bytes).unwrap(),
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    }
}
