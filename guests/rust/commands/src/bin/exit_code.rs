//! Prints "exiting\n" to stdout and "bye\n" to stderr, then exits with the
//! code in `argv[1]` (2 if it is not a number): proc_exit(N) on wasip1; on
//! wasip2 std has only `wasi:cli/exit.exit(ok/err)`, so any N but 0 gives 1.
//! Tests: exit codes, and output kept when a command exits.

fn main() {
    let code = std::env::args().nth(1).and_then(|a| a.parse::<i32>().ok());
    println!("exiting");
    eprintln!("bye");
    std::process::exit(code.unwrap_or(2));
}
