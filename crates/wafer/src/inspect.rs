//! Describing a WebAssembly binary.
