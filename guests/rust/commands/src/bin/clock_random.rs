//! Prints three lines: wall-clock nanoseconds since the UNIX epoch, the
//! monotonic nanoseconds across a sleep of argv[1] ms (default 50), 16 WASI
//! random bytes in hex.
//! Tests: Dapr's strictSandbox (same output on every run only when strict).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() {
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    println!("{}", wall.as_nanos());
    let start = Instant::now();
    let sleep_ms = std::env::args()
        .nth(1)
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(50);
    std::thread::sleep(Duration::from_millis(sleep_ms));
    println!("{}", (Instant::now() - start).as_nanos());
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    println!("{hex}");
}
