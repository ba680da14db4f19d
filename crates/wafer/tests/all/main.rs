//! Library tests against our own guests: one binary, one module per topic.

mod commands;
mod instances;
mod mapping;
mod metrics;
mod pools;
mod reload;
mod sources;
mod util;
mod workers;
