//! `wafer run [PATH]`: run a registry's pipelines and serve its
//! `http.service`s (or a folder of Dapr components as Dapr's sidecar
//! would) and its `nats.endpoint`s, or run one pipeline file (a Benthos
//! config), until the pipelines' inputs end or Ctrl-C or SIGTERM.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use tokio::sync::watch;
use wafer::Runtime;
use wafer::metrics::{MessageCount, PipelineMetrics};
use wafer_pipeline::{PipelineError, Summary};

use super::{CacheArgs, pipelines};
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
/// with problems are logged and answer 422 when called; a pipeline or a
/// NATS endpoint with problems stops the run before anything starts, and
/// so does a NATS server that cannot be reached.
///
/// A pipeline runs until its input ends; with no HTTP service or NATS
/// endpoint, wafer then exits, after a summary per pipeline on stderr
/// (received, processed, dropped, failed).
///
/// A folder of Dapr components and no http.service is served on
/// 127.0.0.1:3500, Dapr's own port, so that Dapr's
/// `curl localhost:3500/v1.0/bindings/NAME` works as written.
///
/// Examples: wafer run examples/http; wafer run examples/pipelines/upper.yaml
#[derive(clap::Args)]
pub struct RunArgs {
    /// The registry folder or file, or a pipeline file.
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
    let loaded = pipelines::load(&args.registry)?;
    for problem in loaded.registry.problems() {
        tracing::warn!("{problem}");
    }
    let runtime = Arc::new(
        Runtime::with_options(loaded.registry, args.cache.options()).map_err(Failure::failed)?,
    );
    let (pipelines, mut problems) = pipelines::build(&runtime, loaded.configs);
    problems.splice(0..0, loaded.problems);
    let (endpoints, endpoint_problems) = wafer_nats::endpoints::plan(runtime.registry());
    problems.extend(endpoint_problems);
    if let Some(first) = problems.first() {
        for problem in &problems[1..] {
            tracing::error!("{problem}");
        }
        return Err(Failure::input(anyhow!("{first}")));
    }
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(anyhow!("cannot start the async runtime: {e}")))?;
    let outcome = tokio.block_on(async {
        for (id, error) in runtime.warm_up().await {
            tracing::warn!(function = %id, "Not ready: {error}");
        }
        let dapr_port = args
            .dapr_http_port
            .unwrap_or(wafer_http::DEFAULT_DAPR_HTTP_PORT);
        let mut servers = wafer_http::Servers::new(dapr_port);
        let services = servers.plan(&runtime).await.map_err(Failure::failed)?;
        if args.dapr_http_port.is_some() && services.services().all(|(id, _)| id != wafer_http::DAPR_SERVICE) {
            tracing::warn!("--dapr-http-port is not used: the registry declares http.service entries, and each serves Dapr's API");
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
        // signal stops the services and pipelines gracefully.
        let signal = stop_signal().map_err(Failure::failed)?;
        let (stop, stopping) = watch::channel(false);
        tokio::spawn(async move {
            signal.await;
            let _ = stop.send(true);
        });
        let stopped = |mut stopping: watch::Receiver<bool>| async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        if std::io::stderr().is_terminal() && !pipelines.is_empty() {
            tokio::spawn(report_progress(
                pipelines.iter().map(|p| p.metrics()).collect(),
            ));
        }
        let runs: Vec<_> = pipelines
            .into_iter()
            .map(|pipeline| {
                tracing::info!(pipeline = %pipeline.name(), "Running.");
                tokio::spawn(pipeline.run(stopped(stopping.clone())))
            })
            .collect();
        for (id, addr) in services.services() {
            tracing::info!(service = %id, "Listening on http://{addr}");
        }
        let serving = !services.is_empty();
        servers.apply(services);
        for bound in &endpoints {
            let (id, config) = (&bound.endpoint.id, &bound.endpoint.config);
            tracing::info!(
                endpoint = %id,
                "Serving function {} on NATS subject {} (queue {})",
                config.func,
                config.subject,
                config.queue
            );
        }
        let answered = wafer_nats::endpoints::serve(endpoints, stopped(stopping.clone()));
        let served = async {
            if !serving {
                return Ok(());
            }
            tokio::select! {
                () = stopped(stopping.clone()) => servers.stop().await,
                failed = servers.failure() => Err(failed),
            }
        };
        let (served, (), failed) = tokio::join!(served, answered, finish_pipelines(runs));
        // Guests still running after the grace period stop at their next
        // epoch tick, so that the process ends.
        runtime.engine().interrupt_all();
        served.map_err(Failure::failed)?;
        if let Some(failure) = failed {
            return Err(failure);
        }
        tracing::info!("Stopped.");
        Ok(())
    });
    // Everything has finished; what is left is a read of stdin that cannot
    // be cancelled (a pipeline's stdin input stopped by a signal): leave it
    // rather than wait for the next line.
    tokio.shutdown_background();
    outcome
}

/// How often a terminal sees how the pipelines are doing.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// A line per pipeline every [`PROGRESS_EVERY`]: what it received and
/// processed so far, and what is in flight.
async fn report_progress(pipelines: Vec<Arc<PipelineMetrics>>) {
    let mut ticks = tokio::time::interval(PROGRESS_EVERY);
    ticks.tick().await;
    loop {
        ticks.tick().await;
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

/// Waits for every pipeline, printing each one's summary on stderr; the
/// first failure, if one failed.
async fn finish_pipelines(
    runs: Vec<tokio::task::JoinHandle<Result<Summary, PipelineError>>>,
) -> Option<Failure> {
    let mut failure = None;
    for run in runs {
        let outcome = run
            .await
            .unwrap_or_else(|panicked| panic!("a pipeline panicked: {panicked}"));
        match outcome {
            Ok(summary) => eprintln!("{summary}"),
            Err(error) => {
                eprintln!("{}", error.summary());
                failure.get_or_insert(Failure::failed(error));
            }
        }
    }
    failure
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
