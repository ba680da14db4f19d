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

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use observe::HttpMetrics;
use wafer::Runtime;
use wafer::registry::{EntryKind, HttpServiceConfig};

pub use response::status_of;

/// How long a client may take to send a request's body: 30 s. A slower
/// one is answered 408.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The port Dapr's API is served on when the registry declares no
/// `http.service`: Dapr's own default HTTP port.
pub const DEFAULT_DAPR_HTTP_PORT: u16 = 3500;

/// The id of the service a registry of Dapr components gets.
pub const DAPR_SERVICE: &str = "dapr";

/// How long a stop waits for the requests in flight: 30 s. Connections
/// still open then are closed.
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

/// A service bound to its address, ready to serve.
pub struct BoundService {
    /// The `http.service` entry's id.
    pub id: String,
    /// The address it listens on (the port the OS chose, for port 0).
    pub addr: SocketAddr,
    listener: tokio::net::TcpListener,
    router: axum::Router,
}

/// Binds every `http.service` of the runtime's registry; a registry with
/// none but with Dapr components gets one service, [`DAPR_SERVICE`], on
/// `127.0.0.1:{dapr_http_port}`. Nothing is served until [`serve`].
///
/// # Errors
///
/// The first address that cannot be bound, naming its service.
pub async fn bind(
    runtime: &Arc<Runtime>,
    dapr_http_port: u16,
) -> Result<Vec<BoundService>, HttpError> {
    let metrics = Arc::new(HttpMetrics::new());
    let mut bound = Vec::new();
    for entry in runtime.registry().entries() {
        let EntryKind::HttpService(config) = &entry.kind else {
            continue;
        };
        bound.push(bind_service(runtime, &entry.id, config, &metrics).await?);
    }
    if bound.is_empty() && runtime.registry().dapr_bindings().next().is_some() {
        let addr = SocketAddr::from(([127, 0, 0, 1], dapr_http_port));
        let config = HttpServiceConfig::new(addr);
        bound.push(bind_service(runtime, DAPR_SERVICE, &config, &metrics).await?);
    }
    Ok(bound)
}

async fn bind_service(
    runtime: &Arc<Runtime>,
    id: &str,
    config: &HttpServiceConfig,
    metrics: &Arc<HttpMetrics>,
) -> Result<BoundService, HttpError> {
    let bind_error = |source| HttpError::Bind {
        service: id.to_string(),
        addr: config.addr,
        source,
    };
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    Ok(BoundService {
        id: id.to_string(),
        addr,
        listener,
        router: routes::router(runtime, id, config, metrics),
    })
}

/// Serves `services` until `shutdown` completes, then stops taking
/// connections and lets the requests in flight finish, for at most
/// [`SHUTDOWN_GRACE`].
///
/// # Errors
///
/// When a server fails, naming its service.
pub async fn serve(
    services: Vec<BoundService>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    for service in services {
        let mut stopped = stopped.clone();
        servers.spawn(async move {
            let graceful = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            axum::serve(service.listener, service.router)
                .with_graceful_shutdown(graceful)
                .await
                .map_err(|source| HttpError::Serve {
                    service: service.id,
                    source,
                })
        });
    }
    let (stopping, mut stop_requested) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
        let _ = stopping.send(true);
    });
    let drained = async {
        while let Some(done) = servers.join_next().await {
            done.expect("a server task never panics")?;
        }
        Ok(())
    };
    let grace = async {
        let _ = stop_requested.wait_for(|stop| *stop).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        drained = drained => drained,
        () = grace => {
            tracing::warn!("Requests still running after {} s; closing their connections.", SHUTDOWN_GRACE.as_secs());
            Ok(())
        }
    }
}
