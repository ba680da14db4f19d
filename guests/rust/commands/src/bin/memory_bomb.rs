//! Allocates and writes 1 MiB chunks forever, keeping them all; when the host
//! refuses to grow memory it traps (`unreachable`), printing nothing (not
//! even std's allocation failure message). Tests: memory limits.

use std::hint::black_box;

fn main() {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = Vec::new();
        if chunks.try_reserve(1).is_err() || chunk.try_reserve_exact(1 << 20).is_err() {
            core::arch::wasm32::unreachable();
        }
        chunk.resize(1 << 20, 0xa5);
        chunks.push(black_box(chunk));
    }
}
