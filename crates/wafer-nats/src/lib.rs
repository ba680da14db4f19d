//! wafer on NATS: connecting ([`connect`]), shared by the pipeline's NATS
//! and JetStream inputs and outputs, and functions answering
//! request-reply on subjects ([`endpoints`]).

pub mod connect;
pub mod endpoints;

pub use async_nats;
pub use connect::{Auth, ClientCert, Connect, FieldError, Tls};
