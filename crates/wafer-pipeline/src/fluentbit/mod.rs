//! Fluent Bit's Wasm plugins and config files on wafer's stream engine.
//!
//! # Records
//!
//! A Fluent Bit record travels as an ordinary [`wafer::Message`]:
//!
//! * `bytes`: the record's body, a JSON object (UTF-8);
//! * `timestamp`: its event time (Fluent Bit's `sec.nsec`);
//! * metadata [`TAG`]: its tag, set by the input that made it.
//!
//! So the Fluent Bit components (inputs `exec_wasi`, `dummy`,
//! `stdin_records`; processor `wasm_filter`; outputs `fluentbit_stdout`,
//! `fluentbit_file`, `fluentbit_http`) mix with the Benthos ones in any
//! pipeline, and a Fluent Bit config file ([`config`]) is translated into
//! such pipelines, one per input, its `Match` rules resolved against the
//! input's tag when it is built.
//!
//! * [`config`]: classic `.conf` and YAML Fluent Bit configs, translated.
//! * [`format`]: records rendered as Fluent Bit's outputs render them.
//! * [`value`]: Fluent Bit's way of writing values (`On`, `4k`, `a,b`).

pub mod config;
pub mod format;
pub mod value;

/// The metadata key holding a record's Fluent Bit tag.
pub const TAG: &str = "tag";
