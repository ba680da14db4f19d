//! An `exec_wasi` program: prints three JSON records, one per line.

fn main() {
    for i in 1..=3 {
        println!("{{\"n\":{i},\"message\":\"line {i}\"}}");
    }
}
