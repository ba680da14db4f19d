//! An `exec_wasi` program: prints five lines: two plain log lines
//! (`<time> <LEVEL> <message>`, times with fractions and zones), two JSON
//! records with a `time` field, and one that is neither. Tests: parsers
//! with a time key, and the line a parser refuses.

fn main() {
    println!("2024-05-06T09:08:09.250+0200 INFO started");
    println!(r#"{{"time":"2024-05-06T07:08:10.5Z","level":"WARN","message":"slow"}}"#);
    println!("not a log line");
    println!("2024-05-06T07:08:11.000000001Z ERROR failed twice");
    println!(r#"{{"level":"INFO","time":"2024-05-06T07:08:12.000Z","message":"done"}}"#);
}
