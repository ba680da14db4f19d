//! Paths of our own test guests, built once by `build.rs`.
//!
//! * `P2_TYPES`: a Rust wasm32-wasip2 component exporting every kind of WIT
//!   value (`guests/rust/components/wit/types.wit`), plus `add`.
//! * `CORE_CANONICAL`: a Rust wasm32-unknown-unknown core module following
//!   the canonical ABI by hand (`add`, `greet`, `sum`).
//! * `P1_*` and `P2_*` (`P1_ECHO`, `P2_EXIT_CODE`...): the WASI command
//!   programs of `guests/rust/commands`, one per `src/bin/<name>.rs`, built
//!   for wasm32-wasip1 (core modules exporting `_start`, importing
//!   `wasi_snapshot_preview1`) and for wasm32-wasip2 (components exporting
//!   `wasi:cli/run`). Each constant's doc says what its program does.
//! * `BENTHOS_*` (`BENTHOS_LOUDER`, `BENTHOS_TINY_UPPER`...): processors for
//!   Benthos' wasm ABI (`v0_msg_as_bytes`...), one per file of
//!   `guests/rust/benthos`: `examples/<name>.rs` are wasm32-unknown-unknown
//!   modules exporting `process`, `allocate` and `deallocate`, importing
//!   `benthos_wasm` (`bento_wasm` for `BENTHOS_BENTO_LOUDER`);
//!   `src/bin/<name>.rs` are TinyGo-like wasm32-wasip1 commands exporting
//!   `_start`, `process`, `malloc` and `free`. Several misbehave on purpose
//!   (trap, spin, out-of-bounds pointer, growing memory); each constant's doc
//!   says how.
//! * `WAT_*`: the WAT guests in `guests/wat`, several misbehaving on purpose;
//!   `WAT_P1_EXIT` is a preview1 command writing "bye\n", then `proc_exit(3)`.
#![deny(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
