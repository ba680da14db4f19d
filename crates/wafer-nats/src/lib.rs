//! wafer on NATS: connecting ([`connect`]), shared by the pipeline's NATS
//! and JetStream inputs and outputs, and functions answering
//! request-reply on subjects ([`endpoints`]). [`round_trip`] waits until
//! the server has processed what a client sent.

pub mod connect;
pub mod endpoints;

pub use async_nats;
pub use connect::{Auth, ClientCert, Connect, FieldError, ROUND_TRIP_PATIENCE, Tls, round_trip};
