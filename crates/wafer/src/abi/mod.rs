//! How a call crosses into the guest: one module per ABI, each opening with
//! the exact guest contract.
//!
//! Active: [`wit`] (typed calls, the default). `wasi-command`, `benthos` and
//! `fluentbit` are accepted in the registry and arrive later.

pub(crate) mod wit;
