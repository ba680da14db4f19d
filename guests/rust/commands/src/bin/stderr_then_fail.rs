//! Writes "partial output\n" to stdout and "something broke\n" to stderr,
//! then exits 1. Tests: output and stderr kept for a failed command.

fn main() {
    println!("partial output");
    eprintln!("something broke");
    std::process::exit(1);
}
