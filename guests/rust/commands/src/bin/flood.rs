//! Writes 64 KiB of 'x' to stdout again and again, forever; when a write
//! fails it says so on stderr and exits 1. Tests: output limits.

use std::io::Write;

fn main() {
    let buf = [b'x'; 64 * 1024];
    let mut stdout = std::io::stdout().lock();
    loop {
        if let Err(e) = stdout.write_all(&buf) {
            eprintln!("flood: write failed: {e}");
            std::process::exit(1);
        }
    }
}
