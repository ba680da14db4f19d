//! Paths of our own test guests, built once by `build.rs`.
//!
//! * `P2_TYPES`: a Rust wasm32-wasip2 component exporting every kind of WIT
//!   value (`guests/rust/components/wit/types.wit`), plus `add`.
//! * `CORE_CANONICAL`: a Rust wasm32-unknown-unknown core module following
//!   the canonical ABI by hand (`add`, `greet`, `sum`).
//! * `WAT_*`: the WAT guests in `guests/wat`, several misbehaving on purpose.
#![deny(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
