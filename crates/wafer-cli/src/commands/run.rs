//! `wafer run [DIR]`: serve every `http.service` of a registry, or a
//! folder of Dapr components as Dapr's sidecar would, until Ctrl-C or
//! SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::anyhow;
use wafer::Runtime;

use super::{CacheArgs, load_registry};
use crate::exit::Failure;

/// Serve the registry's HTTP services until Ctrl-C or SIGTERM.
///
/// Every function is compiled and its pool warmed before a service listens;
/// each service logs the address it listens on. On Ctrl-C or SIGTERM the
/// services stop taking connections and finish the requests in flight.
/// Entries with problems are logged and answer 422 when called.
///
/// A folder of Dapr components and no http.service is served on
/// 127.0.0.1:3500, Dapr's own port, so that Dapr's
/// `curl localhost:3500/v1.0/bindings/NAME` works as written.
///
/// Example: wafer run examples/http
#[derive(clap::Args)]
pub struct RunArgs {
    /// The registry folder or file.
    #[arg(default_value = ".")]
    registry: PathBuf,
    /// The port of Dapr's API when the registry declares no http.service
    /// [default: 3500].
    #[arg(long, value_name = "PORT")]
    dapr_http_port: Option<u16>,
    #[command(flatten)]
    cache: CacheArgs,
}

pub fn run(args: RunArgs) -> Result<(), Failure> {
    let registry = load_registry(&args.registry)?;
    for problem in registry.problems() {
        tracing::warn!("{problem}");
    }
    let runtime =
        Arc::new(Runtime::with_options(registry, args.cache.options()).map_err(Failure::failed)?);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(anyhow!("cannot start the async runtime: {e}")))?;
    tokio.block_on(async {
        for (id, error) in runtime.warm_up().await {
            tracing::warn!(function = %id, "Not ready: {error}");
        }
        let dapr_port = args
            .dapr_http_port
            .unwrap_or(wafer_http::DEFAULT_DAPR_HTTP_PORT);
        let services = wafer_http::bind(&runtime, dapr_port)
            .await
            .map_err(Failure::failed)?;
        if args.dapr_http_port.is_some() && services.iter().all(|s| s.id != wafer_http::DAPR_SERVICE) {
            tracing::warn!("--dapr-http-port is not used: the registry declares http.service entries, and each serves Dapr's API");
        }
        if services.is_empty() {
            return Err(Failure::input(anyhow!(
                "{}: no http.service entry and no Dapr component: nothing to serve",
                args.registry.display()
            )));
        }
        // Registered before anyone is told where to connect: from then on a
        // signal stops the services gracefully.
        let stop = stop_signal().map_err(Failure::failed)?;
        for service in &services {
            tracing::info!(service = %service.id, "Listening on http://{}", service.addr);
        }
        let served = wafer_http::serve(services, stop).await;
        // Guests still running after the grace period stop at their next
        // epoch tick, so that the process ends.
        runtime.engine().interrupt_all();
        served.map_err(Failure::failed)?;
        tracing::info!("Stopped.");
        Ok(())
    })
}

/// A future that completes on Ctrl-C or, where there is one, SIGTERM; both
/// handlers are installed before this returns.
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
