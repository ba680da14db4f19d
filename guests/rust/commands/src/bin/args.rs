//! Prints argv, `argv[0]` included, joined by "\n" with no trailing newline:
//! `["main", "1", "2"]` prints `"main\n1\n2"`. Dapr's testdata `args`.

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(args.join("\n").as_bytes()).unwrap();
    stdout.flush().unwrap();
}
