//! `wafer run [PATH]`: run a registry's pipelines and serve its
//! `http.service`s (or a folder of Dapr components as Dapr's sidecar
//! would) and its `nats.endpoint`s, or run one pipeline file (a Benthos
//! config), until the pipelines' inputs end or Ctrl-C or SIGTERM; reload
//! on SIGHUP or, with `--watch`, when a file changes.
//!
//! A generation is loaded and built off the async workers
//! ([`generation`]); the services, endpoints and pipelines then run
//! beside the loop that waits for a stop or a reload ([`reload`]).

mod generation;
mod pipeline_runs;
mod reload;
mod triggers;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wafer::Runtime;
use wafer::metrics::MessageCount;
use wafer_nats::endpoints::BoundEndpoint;

use self::generation::First;
use self::pipeline_runs::PipelineRuns;
use self::reload::Running;
use self::triggers::Triggers;
use super::CacheArgs;
use crate::exit::Failure;

/// Run the registry's pipelines and serve its HTTP services and NATS
/// endpoints, or run a pipeline file, until Ctrl-C or SIGTERM.
///
/// Every function is compiled and its pool warmed before a service listens;
/// each service logs the address it listens on, each NATS endpoint the
/// subject it answers once subscribed. On Ctrl-C or SIGTERM the services
/// stop taking connections and finish the requests in flight, the NATS
/// endpoints unsubscribe and answer the requests they were given, and the
/// pipelines stop taking input and finish the messages in flight. Entries
/// with problems are logged (a function answers 422 when called; a refused
/// endpoint is not served); a pipeline or a NATS endpoint that cannot be
/// built stops the run before anything starts, and so does a NATS server
/// that cannot be reached.
///
/// SIGHUP reloads: the registry (or pipeline file) is read and built again
/// beside the running one, and if it has no problem at all it takes over
/// (HTTP requests in flight finish on the old functions, changed pipelines
/// drain first); else every problem is logged and the running generation
/// goes on. `--watch` reloads when a file changes under the registry
/// folder (or in the folder of the file named).
///
/// A pipeline runs until its input ends; with no HTTP service or NATS
/// endpoint, wafer then exits, after a summary per pipeline on stderr
/// (received, processed, dropped, failed).
///
/// A folder of Dapr components and no http.service is served on
/// 127.0.0.1:3500, Dapr's own port, so that Dapr's
/// `curl localhost:3500/v1.0/bindings/NAME` works as written.
///
/// Examples: wafer run examples/http; wafer run --watch examples/http;
/// wafer run examples/pipelines/upper.yaml
#[derive(clap::Args)]
pub struct RunArgs {
    /// The registry folder or file, or a pipeline file.
    #[arg(default_value = ".")]
    registry: PathBuf,
    /// The port of Dapr's API when the registry declares no http.service
    /// [default: 3500].
    #[arg(long, value_name = "PORT")]
    dapr_http_port: Option<u16>,
    /// Reload when a file changes under the registry folder (or in the
    /// folder of the file named), as SIGHUP does.
    #[arg(long)]
    watch: bool,
    #[command(flatten)]
    cache: CacheArgs,
}

pub fn run(args: RunArgs) -> Result<(), Failure> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(anyhow!("cannot start the async runtime: {e}")))?;
    // Before the first generation is built (which may take a while): a
    // SIGHUP meanwhile asks for a reload once it runs, instead of ending
    // the process.
    let mut triggers = {
        let _entered = tokio.enter();
        Triggers::start().map_err(Failure::failed)?
    };
    // Watching from before the build too; a path that cannot be watched
    // is reported after the build, which names what is wrong with it
    // better.
    let watching = args
        .watch
        .then(|| triggers.watch(&args.registry))
        .transpose();
    let first = generation::first(&args.registry, args.cache.options())?;
    watching.map_err(Failure::failed)?;
    let outcome = tokio.block_on(serve(args, first, triggers));
    // Everything has finished; what is left is a read of stdin that cannot
    // be cancelled (a pipeline's stdin input stopped by a signal): leave it
    // rather than wait for the next line.
    tokio.shutdown_background();
    outcome
}

async fn serve(args: RunArgs, first: First, mut triggers: Triggers) -> Result<(), Failure> {
    let First {
        runtime,
        pipelines,
        configs,
        endpoints,
    } = first;
    for (id, error) in runtime.warm_up().await {
        tracing::warn!(function = %id, "Not ready: {error}");
    }
    let dapr_port = args
        .dapr_http_port
        .unwrap_or(wafer_http::DEFAULT_DAPR_HTTP_PORT);
    let mut servers = wafer_http::Servers::new(dapr_port);
    let services = servers.plan(&runtime).await.map_err(Failure::failed)?;
    if args.dapr_http_port.is_some()
        && services
            .services()
            .all(|(id, _)| id != wafer_http::DAPR_SERVICE)
    {
        tracing::warn!(
            "--dapr-http-port is not used: the registry declares http.service entries, and each serves Dapr's API"
        );
    }
    let endpoints = wafer_nats::endpoints::bind(&runtime, endpoints)
        .await
        .map_err(Failure::failed)?;
    if services.is_empty() && pipelines.is_empty() && endpoints.is_empty() {
        return Err(Failure::input(anyhow!(
            "{}: no http.service, nats.endpoint, pipeline or Dapr component: nothing to run",
            args.registry.display()
        )));
    }
    // Registered before anyone is told where to connect: from then on a
    // signal stops the services and pipelines gracefully, or reloads.
    let signal = stop_signal().map_err(Failure::failed)?;
    let (stop, stopping) = watch::channel(false);
    let (generation, current) = watch::channel(runtime.clone());
    if std::io::stderr().is_terminal() && !pipelines.is_empty() {
        tokio::spawn(report_progress(current));
    }
    let mut runs = PipelineRuns::new(stopping.clone());
    for pipeline in pipelines {
        runs.start(pipeline);
    }
    for (id, addr) in services.services() {
        tracing::info!(service = %id, "Listening on http://{addr}");
    }
    servers.apply(services);
    log_endpoints(&endpoints);
    let endpoints = EndpointRuns::start(endpoints, stopping.clone());
    let mut running = Running {
        path: args.registry.clone(),
        runtime,
        configs,
        servers,
        endpoints,
        runs,
        generation,
        last_refusal: None,
    };
    let mut failed = None;
    tokio::select! {
        () = signal => {}
        error = running.serve_until_stopped(&mut triggers) => failed = Some(error),
    }
    stop.send_replace(true);
    let Running {
        runtime,
        servers,
        endpoints,
        runs,
        ..
    } = running;
    let (served, (), pipelines_failed) =
        tokio::join!(servers.stop(), endpoints.stop(), runs.finish());
    // Guests still running after the grace period stop at their next
    // epoch tick, so that the process ends.
    runtime.engine().interrupt_all();
    if let Some(failure) = failed.flatten() {
        return Err(failure);
    }
    served.map_err(Failure::failed)?;
    if let Some(failure) = pipelines_failed {
        return Err(failure);
    }
    tracing::info!("Stopped.");
    Ok(())
}

/// Logs each endpoint's subject once it is subscribed.
fn log_endpoints(endpoints: &[BoundEndpoint]) {
    for bound in endpoints {
        let (id, config) = (&bound.endpoint.id, &bound.endpoint.config);
        tracing::info!(
            endpoint = %id,
            "Serving function {} on NATS subject {} (queue {})",
            config.func,
            config.subject,
            config.queue
        );
    }
}

/// The NATS endpoints of the generation serving, and those of earlier
/// generations still answering the requests they were given.
struct EndpointRuns {
    current: Option<(watch::Sender<bool>, JoinHandle<()>)>,
    retired: Vec<JoinHandle<()>>,
    stopping: watch::Receiver<bool>,
}

impl EndpointRuns {
    /// Serves `endpoints` until `stopping` turns true.
    fn start(endpoints: Vec<BoundEndpoint>, stopping: watch::Receiver<bool>) -> EndpointRuns {
        let mut runs = EndpointRuns {
            current: None,
            retired: Vec::new(),
            stopping,
        };
        runs.replace(endpoints);
        runs
    }

    /// Serves `endpoints` instead: the earlier ones, already sharing their
    /// queue groups with these, unsubscribe and finish their calls.
    fn replace(&mut self, endpoints: Vec<BoundEndpoint>) {
        // Those that finished draining are gone: the list stays as long
        // as the reloads still draining.
        self.retired.retain(|task| !task.is_finished());
        if let Some((stop, task)) = self.current.take() {
            stop.send_replace(true);
            self.retired.push(task);
        }
        if endpoints.is_empty() {
            return;
        }
        let (stop, own) = watch::channel(false);
        let (mut own, mut all) = (own, self.stopping.clone());
        let stopped = async move {
            tokio::select! {
                _ = own.wait_for(|stop| *stop) => {}
                _ = all.wait_for(|stop| *stop) => {}
            }
        };
        let task = tokio::spawn(wafer_nats::endpoints::serve(endpoints, stopped));
        self.current = Some((stop, task));
    }

    /// Whether any endpoint is served.
    fn serving(&self) -> bool {
        self.current.is_some()
    }

    /// Waits for every endpoint (each was told to stop).
    async fn stop(self) {
        for task in self
            .current
            .map(|(_, task)| task)
            .into_iter()
            .chain(self.retired)
        {
            let _ = task.await;
        }
    }
}

/// How often a terminal sees how the pipelines are doing.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// A line per pipeline of the generation serving every
/// [`PROGRESS_EVERY`]: what it received and processed so far, and what is
/// in flight.
async fn report_progress(current: watch::Receiver<Arc<Runtime>>) {
    let mut ticks = tokio::time::interval(PROGRESS_EVERY);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let pipelines = current.borrow().pipelines();
        for pipeline in &pipelines {
            tracing::info!(
                pipeline = %pipeline.name(),
                received = pipeline.get(MessageCount::Received),
                processed = pipeline.get(MessageCount::Processed),
                failed = pipeline.get(MessageCount::Failed),
                in_flight = pipeline.in_flight(),
                "Progress."
            );
        }
    }
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
