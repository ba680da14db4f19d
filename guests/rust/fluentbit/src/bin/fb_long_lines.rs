//! An `exec_wasi` program: prints a 10,000-byte line (the digits 0-9 over
//! and over), "short", a 4,095-byte line of 'x' (one byte less than the
//! default buf_size, so fgets leaves its newline for the next read), and
//! "end". Tests: buf_size splitting.

fn main() {
    let digits: String = (0..10_000).map(|i| char::from(b'0' + (i % 10) as u8)).collect();
    println!("{digits}");
    println!("short");
    println!("{}", "x".repeat(4095));
    println!("end");
}
