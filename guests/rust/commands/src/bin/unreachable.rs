//! Executes the wasm `unreachable` instruction: a trap, not a panic (no
//! message, no panic hook). Tests: traps in commands.

fn main() {
    core::arch::wasm32::unreachable();
}
