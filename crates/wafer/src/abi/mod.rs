//! How a call crosses into the guest: one module per ABI, each opening with
//! the exact guest contract.
//!
//! Active: [`wit`] (typed calls, the default) and [`wasi_command`] (WASI
//! programs run to completion). `benthos` and `fluentbit` are accepted in
//! the registry and arrive later.

pub(crate) mod wasi_command;
pub(crate) mod wit;

/// Why a function could not be loaded, and which entry field is at fault.
#[derive(Debug)]
pub(crate) struct LoadError {
    pub field: &'static str,
    pub message: String,
}

impl LoadError {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        LoadError {
            field,
            message: message.into(),
        }
    }
}
