//! wafer runs WebAssembly functions declared in a YAML registry.
#![deny(missing_docs)]

pub mod error;
pub mod hash;
pub mod registry;
pub mod values;

pub use error::{Error, Problem, Result};
pub use hash::Sha256Hash;
pub use registry::Registry;
