//! wasi:http: proxy components served as `wasmtime serve` serves them
//! ([`proxy`]), and outbound HTTP from guests, checked against the entry's
//! `allowed_outbound_hosts` ([`crate::wasi::outbound_http`]).
//!
//! Preview 2 components reach `wasi:http/outgoing-handler` through the
//! component linker ([`super::Linkers`]), whatever their ABI; every request
//! passes the function's outbound guard before it is sent.

pub(crate) mod proxy;
