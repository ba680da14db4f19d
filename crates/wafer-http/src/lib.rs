//! Serving a registry's functions over HTTP: every `http.service` entry is
//! one server, answering its `http.endpoint` routes, the function API
//! (`POST /v1/functions/{id}`), Dapr's binding API
//! (`POST /v1.0/bindings/{name}`) and the operations routes (`/healthz`,
//! `/readyz`, `/metrics`). A registry of Dapr components and no service is
//! served as Dapr's sidecar would serve it, on `127.0.0.1:3500`.
//!
//! Every request that runs a guest goes through [`wafer::Runtime::invoke`],
//! the one call path: limits, pools and metrics behave as from the CLI.
//! An error answers with the status its [`wafer::ErrorKind`] maps to
//! ([`response::status_of`]) and a JSON body
//! `{"error": {"kind": …, "message": …}}`.

mod limits;
mod observe;
mod response;
mod routes;
mod servers;

use std::net::SocketAddr;

pub use response::status_of;
pub use servers::{Plan, Servers, ServiceChanges};

/// How long a client may take to send a request's body: 30 s. A slower
/// one is answered 408.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The port Dapr's API is served on when the registry declares no
/// `http.service`: Dapr's own default HTTP port.
pub const DEFAULT_DAPR_HTTP_PORT: u16 = 3500;

/// The id of the service a registry of Dapr components gets.
pub const DAPR_SERVICE: &str = "dapr";

/// How long a stop (or a reload that retires a service) waits for the
/// requests in flight: 30 s. Connections still open then are closed.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Why the servers could not run.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A service's address could not be bound.
    #[error("service {service}: cannot listen on {addr}: {source}")]
    Bind {
        /// The `http.service` entry.
        service: String,
        /// Its `addr`.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("service {service}: {source}")]
    Serve {
        /// The `http.service` entry.
        service: String,
        /// What failed.
        source: std::io::Error,
    },
}
