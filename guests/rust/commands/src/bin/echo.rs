//! Copies stdin to stdout byte for byte. Tests: stdin and stdout plumbing.

fn main() {
    let copied = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::stdout().lock());
    if let Err(e) = copied {
        eprintln!("echo: {e}");
        std::process::exit(1);
    }
}
