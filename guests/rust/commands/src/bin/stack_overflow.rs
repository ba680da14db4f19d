//! Recurses without end, doing work after each call so it is no tail call:
//! exhausts the wasm call stack (a trap). Tests: stack overflow of commands.

use std::hint::black_box;

/// Each frame adds to the result of the next, through `black_box` so that
/// the optimizer can neither see through nor turn the recursion into a loop.
#[inline(never)]
#[allow(unconditional_recursion)]
fn down(depth: u32) -> u32 {
    black_box(down(black_box(depth + 1))).wrapping_add(depth)
}

fn main() {
    println!("{}", down(0));
}
