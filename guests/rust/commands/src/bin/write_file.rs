//! Writes `argv[2]` into the file at `argv[1]` (created or truncated); on error
//! prints the error to stderr and exits 1. Tests: writable and read-only dirs.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (path, text) = (
        args.get(1).map_or("", String::as_str),
        args.get(2).map_or("", String::as_str),
    );
    if let Err(e) = std::fs::write(path, text) {
        eprintln!("{path}: {e}");
        std::process::exit(1);
    }
}
