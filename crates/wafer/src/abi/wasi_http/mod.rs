//! wasi:http: proxy components served as `wasmtime serve` serves them
//! ([`proxy`]), and outbound HTTP from guests, checked against the entry's
//! `allowed_outbound_hosts` ([`crate::wasi::outbound_http`]).
//!
//! WASI preview 1 core modules that import the 2023 preview of wasi-http
//! as core functions (Dapr's TinyGo guests) get it from [`preview2023`],
//! linked into the preview 1 linker.
//!
//! Preview 2 components reach `wasi:http/outgoing-handler` through the
//! component linker ([`super::Linkers`]), whatever their ABI; every request
//! passes the function's outbound guard before it is sent.

pub(crate) mod preview2023;
pub(crate) mod proxy;
