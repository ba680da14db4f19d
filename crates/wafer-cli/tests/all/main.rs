//! Tests that run the real `wafer` binary the way a user does.

mod call;
mod check;
mod dapr;
mod fluentbit_configs;
mod fluentbit_filter;
mod fluentbit_inputs;
mod fluentbit_outputs;
mod hostile;
mod nats_endpoints;
mod nats_inputs;
mod nats_pipelines;
mod nats_server;
mod pipelines;
mod pipelines_http;
mod programs;
mod receiver;
mod reload;
mod reload_nats;
mod serve;
mod serve_limits;
mod server;
mod tools;
mod util;
mod wasi_http;
