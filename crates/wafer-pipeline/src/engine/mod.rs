//! Running a pipeline: the input feeds a queue, and its [`Stage`] takes
//! the batches from there: `threads` workers (each a thread of its own)
//! run the processors, one output task writes (in input order when
//! `ordered`) and acknowledges. A reload may hand a running pipeline a
//! new stage ([`Pipeline::run_replaced`]) while its input runs on.
//!
//! Delivery is at least once: a batch is acknowledged to its input only
//! after the output (and the dead-letter output, for its flagged messages)
//! confirmed it. A batch the pipeline could not finish (an output failed,
//! a worker panicked) is never acknowledged, nor dropped silently: an
//! input that waits for the acknowledgement hears the error.
//!
//! Memory is bounded by the batches in flight: at most
//! [`max_batches_in_flight`] (`4 × threads + 2`) at once, whether queued
//! for a worker, in one, waiting for the output (or, when `ordered`, for
//! an earlier batch still in a worker) or being written. Each takes a
//! permit in [`Sink`] before it is queued and gives it back once it is
//! written and acknowledged (or failed), so a slow output or one slow
//! batch slows the input instead of filling memory. The queues are as
//! deep as the permits, so it is the permits that stop the input, and the
//! output task never stops taking finished batches: when `ordered`, the
//! batch it waits for may be queued behind them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures_util::FutureExt;
use tokio::sync::{Mutex, Semaphore, mpsc, watch};
use wafer::Problem;
use wafer::metrics::{MessageCount, PipelineMetrics};

mod sink;
mod stage;
mod summary;
mod writer;

pub use sink::{Settled, Sink, Stopped, Stopping, Tracked, TrackedAck};
pub use stage::Stage;
pub use summary::{PipelineError, Summary};

use self::sink::Batch;
use self::stage::{RunningStage, StageFailures};
use crate::config::{OnError, PipelineConfig, Problems};
use crate::dependencies::Recorder;
use crate::inputs::Input;
use crate::outputs::Output;
use crate::processors::Processor;
use crate::{BuildContext, Dependencies, inputs, outputs, processors};

/// The metadata key of the error a flagged message carries.
pub const ERROR_METADATA: &str = "error";

/// The metadata key of a part's index (from 0) when processors turned one
/// message of a tracked batch ([`Sink::send_tracked`]) into several: what
/// keeps the parts apart when an output derives an id from the message it
/// came from (a JetStream output's `Nats-Msg-Id`).
pub const PART_METADATA: &str = "wafer_part";

/// The most batches a pipeline of `threads` workers has in flight:
/// `4 × threads + 2`. Per worker, the batch in its hands, one queued
/// behind it and two finished ones waiting for the output (or, when
/// ordered, behind a slower batch of another worker); plus, at the
/// output, the batch being written and the next one. Fewer would leave
/// workers idle while the output writes; more would only hold more
/// memory (batches of up to [`inputs::MAX_BATCH`] messages for the
/// inputs that batch lines).
pub fn max_batches_in_flight(threads: usize) -> usize {
    4 * threads.max(1) + 2
}

/// What an input that waits for its acknowledgement hears when the
/// pipeline could not finish its batch and said nothing more precise.
const NOT_FINISHED: &str = "the pipeline stopped before the output confirmed the message";

/// What to build of a config.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Build {
    /// Everything, to run.
    Run,
    /// Everything, to check it (no socket bound, nothing created).
    Check,
    /// All but the input (a reload's new [`Stage`]).
    Stage,
}

/// A pipeline built from its config, ready to run: its input, and the
/// [`Stage`] its messages go through.
pub struct Pipeline {
    name: String,
    input_name: String,
    input: Box<dyn Input>,
    /// What its input loaded as it was built.
    input_dependencies: Dependencies,
    /// [`Input::position`].
    input_position: Option<String>,
    stage: Stage,
}

/// The components of a config, built.
struct Components {
    input: Option<Box<dyn Input>>,
    /// What the input loaded, and what the rest did.
    dependencies: (Dependencies, Dependencies),
    processors: Vec<Box<dyn Processor>>,
    processor_names: Vec<String>,
    output: Box<dyn Output>,
    dead_letter: Option<Box<dyn Output>>,
}

impl Components {
    /// The stage these components make for `config`, counted by
    /// `metrics`.
    fn stage(
        self,
        config: &PipelineConfig,
        metrics: impl FnOnce(Vec<String>) -> Arc<PipelineMetrics>,
    ) -> (Option<Box<dyn Input>>, Dependencies, Stage) {
        let stage = Stage {
            processors: self.processors,
            output_name: config.output.name().to_string(),
            output: self.output,
            dead_letter: self.dead_letter,
            drop_failed: matches!(config.on_error, OnError::Drop),
            threads: config.threads.max(1),
            ordered: config.ordered,
            metrics: metrics(self.processor_names),
            dependencies: self.dependencies.1,
            retire: watch::Sender::new(false),
        };
        (self.input, self.dependencies.0, stage)
    }
}

/// The pipeline's counters (in the runtime's metrics), and whether a
/// processor's failure, and a message the output rejected, were logged at
/// warning level yet.
struct Counts {
    metrics: Arc<PipelineMetrics>,
    warned: AtomicBool,
    warned_rejected: AtomicBool,
}

impl Counts {
    fn new(metrics: Arc<PipelineMetrics>) -> Counts {
        Counts {
            metrics,
            warned: AtomicBool::new(false),
            warned_rejected: AtomicBool::new(false),
        }
    }

    fn add(&self, count: MessageCount, n: u64) {
        self.metrics.add(count, n);
    }

    /// Logs a processor's failure: the first at warning level, `then`
    /// saying what happens to it; later ones at debug level.
    fn warn_once(&self, error: &str, then: &str) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(%error, "A processor failed on a message ({then}).");
        } else {
            tracing::debug!(%error, "A processor failed on a message.");
        }
    }

    /// Logs a message the output rejected, as [`Counts::warn_once`] logs
    /// a processor's failure.
    fn warn_rejected(&self, error: &str, then: &str) {
        if !self.warned_rejected.swap(true, Ordering::Relaxed) {
            tracing::warn!(%error, "The output rejected a message ({then}; later ones are logged at debug level and counted as failed in the summary).");
        } else {
            tracing::debug!(%error, "The output rejected a message.");
        }
    }
}

impl Pipeline {
    /// Builds every component of `config`: modules are read and compiled
    /// and registry functions loaded, and an `http_server` input binds its
    /// socket. It compiles on this thread: call it outside async code.
    ///
    /// # Errors
    ///
    /// Every problem found, each naming the component and field.
    pub fn build(
        runtime: &Arc<wafer::Runtime>,
        config: PipelineConfig,
    ) -> Result<Pipeline, Vec<Problem>> {
        let components = Self::components(runtime, &config, Build::Run)?;
        let (input, input_dependencies, stage) = components.stage(&config, |processors| {
            runtime.pipeline_metrics(&config.name, processors)
        });
        let input = input.expect("a run's build builds the input");
        Ok(Pipeline {
            input_name: config.input.name().to_string(),
            name: config.name,
            input_position: input.position(),
            input,
            input_dependencies,
            stage,
        })
    }

    /// Builds the stage of `config` (everything but its input, which is
    /// not touched): for a reload that changed a running pipeline's
    /// processors or outputs and not its input ([`Pipeline::run_replaced`]).
    /// Its message counts go on from those of the pipeline of the same
    /// name in `runtime`. It compiles on this thread: call it outside
    /// async code.
    ///
    /// # Errors
    ///
    /// Every problem found, each naming the component and field.
    pub fn build_stage(
        runtime: &Arc<wafer::Runtime>,
        config: &PipelineConfig,
    ) -> Result<Stage, Vec<Problem>> {
        let components = Self::components(runtime, config, Build::Stage)?;
        let (_, _, stage) = components.stage(config, |processors| {
            runtime.continued_pipeline_metrics(&config.name, processors)
        });
        Ok(stage)
    }

    /// What [`Pipeline::build`] would find wrong with `config`, found the
    /// same way (modules compiled, registry functions loaded) but taking
    /// nothing a running pipeline holds: no socket is bound, no metrics
    /// are registered. For `wafer check`, which may run beside the
    /// pipelines it checks. Call it outside async code.
    pub fn check(runtime: &Arc<wafer::Runtime>, config: PipelineConfig) -> Vec<Problem> {
        match Self::components(runtime, &config, Build::Check) {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        }
    }

    /// Builds the components of `config` that `build` asks for.
    fn components(
        runtime: &Arc<wafer::Runtime>,
        config: &PipelineConfig,
        build: Build,
    ) -> Result<Components, Vec<Problem>> {
        let mut problems = Problems::new(&config.file, config.entry.as_deref());
        let cx = BuildContext {
            runtime,
            pipeline: &config.name,
            threads: config.threads,
            base_dir: config.base_dir.as_deref(),
            check_only: build == Build::Check,
            dependencies: Recorder::default(),
        };
        let input = match build {
            Build::Stage => None,
            _ => inputs::build(&config.input, &cx)
                .map_err(|e| problems.component(&config.input, e))
                .ok(),
        };
        let input_dependencies = cx.dependencies.take();
        let mut stages = Vec::new();
        let mut stage_names = Vec::new();
        for processor in config
            .input_processors
            .iter()
            .chain(&config.processors)
            .chain(&config.output_processors)
        {
            match processors::build(processor, &cx) {
                Ok(component) => {
                    stages.push(component);
                    stage_names.push(processor.name().to_string());
                }
                Err(e) => problems.component(processor, e),
            }
        }
        let output = outputs::build(&config.output, &cx)
            .map_err(|e| problems.component(&config.output, e))
            .ok();
        let dead_letter = match &config.on_error {
            OnError::Output(dead_letter) => outputs::build(dead_letter, &cx)
                .map_err(|e| problems.component(dead_letter, e))
                .ok(),
            _ => None,
        };
        let input_built = input.is_some() || build == Build::Stage;
        match output {
            Some(output) if input_built && problems.is_empty() => Ok(Components {
                input,
                dependencies: (input_dependencies, cx.dependencies.take()),
                processors: stages,
                processor_names: stage_names,
                output,
                dead_letter,
            }),
            _ => Err(problems.into_vec()),
        }
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where a new run of its input goes on from, when it goes on from
    /// where this one's stops ([`Input::position`]): a reload may replace
    /// it with an input of the same position.
    pub fn input_position(&self) -> Option<&str> {
        self.input_position.as_deref()
    }

    /// What its input loaded as it was built (module files), and what
    /// its stage did ([`Stage::dependencies`]).
    pub fn dependencies(&self) -> (&Dependencies, &Dependencies) {
        (&self.input_dependencies, &self.stage.dependencies)
    }

    /// Its counters, as the runtime's metrics render them.
    pub fn metrics(&self) -> Arc<PipelineMetrics> {
        self.stage.metrics.clone()
    }

    /// Runs until the input ends or `stop` resolves, then lets the
    /// messages in flight finish: every message the input produced is
    /// processed and written, or (when an output fails or a worker
    /// panics) not acknowledged: an input that waits hears the error.
    ///
    /// The outputs start first ([`Output::start`]: they connect), then
    /// the input. Once `stop` resolves (even after the input ended) or a
    /// failure stops the pipeline, the input and outputs are told
    /// ([`Stopping`]): an output waiting for a broker gives up after a
    /// while and fails its batch, so that the run ends.
    ///
    /// # Errors
    ///
    /// When the input or an output failed (or could not start), or a
    /// worker panicked; the error carries the summary.
    pub async fn run(
        self,
        stop: impl Future<Output = ()> + Send,
    ) -> Result<Summary, PipelineError> {
        self.run_replaced(stop, mpsc::unbounded_channel().1).await
    }

    /// [`Pipeline::run`], taking each [`Stage`] that `stages` sends (a
    /// reload) in place of the running one while the input runs on: the
    /// input waits while the running stage finishes the batches its
    /// workers took and writes them, then the new stage takes the queue
    /// from the first batch not taken, its outputs started. Each message
    /// goes through one stage, once.
    ///
    /// # Errors
    ///
    /// As [`Pipeline::run`]; a stage that failed while it was replaced
    /// (or whose outputs could not start) ends the run.
    pub async fn run_replaced(
        self,
        stop: impl Future<Output = ()> + Send,
        mut stages: mpsc::UnboundedReceiver<Stage>,
    ) -> Result<Summary, PipelineError> {
        let Pipeline {
            name,
            input_name,
            input,
            mut stage,
            ..
        } = self;
        let metrics = stage.metrics.clone();
        // Fused: it is watched until the end of the run, and never polled
        // again once it resolved.
        let mut stop = std::pin::pin!(stop.fuse());
        let (stopping, stop_requested) = watch::channel(false);
        let stopping_signal = Stopping::new(stop_requested);
        let started = tokio::select! {
            biased;
            // Stopped before it started (a reload superseded it): nothing
            // is taken with an out-of-date definition.
            () = &mut stop => return Ok(*summary(&name, &metrics)),
            started = stage.start_outputs(&stopping_signal) => started,
        };
        if let Err((output, message)) = started {
            return Err(PipelineError::Output {
                summary: summary(&name, &metrics),
                pipeline: name,
                output,
                message,
            });
        }
        let in_flight = stage.in_flight();
        let permits = Arc::new(Semaphore::new(in_flight));
        let (queue, batches) = mpsc::channel::<Batch>(in_flight);
        let shared = stage::Queue {
            batches: Arc::new(Mutex::new(batches)),
            taken: Arc::new(AtomicU64::new(0)),
        };
        // Set when the output failed or a worker panicked: the input stops.
        let (halt, mut halted) = watch::channel(false);
        let halt = Arc::new(halt);
        let mut running = Some(stage.run(&shared, &halt));
        let settlements = Arc::new(std::sync::Mutex::new(tokio::task::JoinSet::new()));
        let sink = Sink {
            queue,
            permits: permits.clone(),
            next: 0,
            counts: Arc::new(Counts::new(metrics.clone())),
            settlements: settlements.clone(),
            stopping: stopping_signal.clone(),
        };
        let stops_itself = input.stops_itself();
        let mut input = input.run(sink);
        let mut failures: StageFailures = (None, None);
        let mut replaceable = true;
        let stopped = loop {
            // The handling is outside the select: its futures (a watch
            // guard among them) are gone by then.
            let replacement = tokio::select! {
                ended = &mut input => break Some(ended.err()),
                () = &mut stop => break None,
                _ = halted.wait_for(|halted| *halted) => break None,
                next = stages.recv(), if replaceable => next,
            };
            let Some(mut next) = replacement else {
                replaceable = false;
                continue;
            };
            // Reloads that came while this one waited: the last wins.
            while let Ok(later) = stages.try_recv() {
                next = later;
            }
            let old = running.take().expect("a stage runs until the run ends");
            let mut replacing = std::pin::pin!(replace(
                old,
                next,
                (&shared, &halt, &permits),
                &stopping_signal
            ));
            // A stop while the old stage drains is told to its outputs
            // (one waiting for a broker gives up), and ends the run once
            // the swap is done.
            let mut stopped_meanwhile = false;
            let replaced = tokio::select! {
                biased;
                replaced = &mut replacing => replaced,
                () = &mut stop => {
                    stopping.send_replace(true);
                    stopped_meanwhile = true;
                    replacing.await
                }
            };
            match replaced {
                Ok(new) => running = Some(new),
                Err(failed) => {
                    failures = failed;
                    break None;
                }
            }
            if stopped_meanwhile {
                break None;
            }
        };
        // No stage takes the queue after this one: once its workers end
        // (even by a panic), what is left in it is dropped, and answered
        // as not delivered.
        drop(shared);
        let input_failed = match stopped {
            Some(failed) => failed,
            None => {
                stopping.send_replace(true);
                if stops_itself {
                    // Told, an input that stops itself hands back what it
                    // holds and returns.
                    input.await.err()
                } else {
                    // Any other is dropped where it stands; its sink goes
                    // with it, which lets the workers finish.
                    drop(input);
                    None
                }
            }
        };
        let drained = async {
            let finished = match running {
                Some(running) => running.finish().await,
                None => (None, None),
            };
            // Every batch is settled now; what the input does with that
            // (acknowledging upstream) finishes before the run does.
            let settling =
                std::mem::take(&mut *settlements.lock().unwrap_or_else(|p| p.into_inner()));
            settling.join_all().await;
            finished
        };
        // A stop (or a failure) while what is in flight drains, after the
        // input ended on its own, is told to the outputs too.
        let stop_or_halt = async {
            tokio::select! {
                () = &mut stop => {}
                gone = async { halted.wait_for(|halted| *halted).await.is_err() } => {
                    if gone {
                        // Everything that could fail has ended.
                        std::future::pending::<()>().await;
                    }
                }
            }
        };
        let mut drained = std::pin::pin!(drained);
        let (worker_failed, output_failed) = tokio::select! {
            finished = &mut drained => finished,
            () = stop_or_halt => {
                stopping.send_replace(true);
                drained.await
            }
        };
        // Nothing waits for a place any more (a smaller stage's permits
        // still to forget among them).
        permits.close();
        let worker_failed = failures.0.or(worker_failed);
        let output_failed = failures.1.or(output_failed);
        let summary = summary(&name, &metrics);
        // A panic first: it is a bug, and it lost messages for certain.
        if let Some(message) = worker_failed {
            return Err(PipelineError::Worker {
                pipeline: name,
                message,
                summary,
            });
        }
        if let Some((output, message)) = output_failed {
            return Err(PipelineError::Output {
                pipeline: name,
                output,
                message,
                summary,
            });
        }
        if let Some(message) = input_failed {
            return Err(PipelineError::Input {
                pipeline: name,
                input: input_name,
                message,
                summary,
            });
        }
        Ok(*summary)
    }
}

/// Starts the outputs of `next`, then retires the `old` stage, waits
/// until it has written what its workers took, and runs `next` on the
/// queue with as many batches in flight as it wants. When the new outputs
/// cannot start (a broker they cannot reach), `old` runs on.
async fn replace(
    old: RunningStage,
    mut next: Stage,
    (queue, halt, permits): (&stage::Queue, &Arc<watch::Sender<bool>>, &Arc<Semaphore>),
    stopping: &Stopping,
) -> Result<RunningStage, StageFailures> {
    if let Err((output, error)) = next.start_outputs(stopping).await {
        tracing::error!(
            pipeline = %next.metrics.name(),
            %output,
            %error,
            "The new outputs could not start; the running processors and outputs go on (change the config and reload, or restart)."
        );
        return Ok(old);
    }
    let in_flight = old.in_flight();
    old.retire();
    let failed = old.finish().await;
    if failed.0.is_some() || failed.1.is_some() {
        return Err(failed);
    }
    // Permits of the old stage's size are all free now but for the
    // batches queued: resized for the new one.
    let wanted = next.in_flight();
    if wanted > in_flight {
        permits.add_permits(wanted - in_flight);
    } else {
        let fewer = in_flight - wanted;
        // Those the queued batches hold are forgotten as they come back.
        let owed = fewer - permits.forget_permits(fewer);
        if owed > 0 {
            let permits = permits.clone();
            tokio::spawn(async move {
                let owed = u32::try_from(owed).unwrap_or(u32::MAX);
                if let Ok(taken) = permits.acquire_many_owned(owed).await {
                    taken.forget();
                }
            });
        }
    }
    tracing::info!(
        pipeline = %next.metrics.name(),
        from = queue.taken.load(std::sync::atomic::Ordering::Acquire),
        "Took the new processors and outputs; the input runs on."
    );
    Ok(next.run(queue, halt))
}

/// What the run of pipeline `name` did so far.
fn summary(name: &str, metrics: &PipelineMetrics) -> Box<Summary> {
    Box::new(Summary {
        name: name.to_string(),
        received: metrics.get(MessageCount::Received),
        processed: metrics.get(MessageCount::Processed),
        dropped: metrics.get(MessageCount::Dropped),
        failed: metrics.get(MessageCount::Failed),
        dead_lettered: metrics.get(MessageCount::DeadLettered),
        filtered: metrics.get(MessageCount::Filtered),
        retried: metrics.get(MessageCount::Retried),
    })
}

/// What a panic said, when it said it as text.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(text), _) => (*text).to_string(),
        (_, Some(text)) => text.clone(),
        _ => "a panic without a message".to_string(),
    }
}

#[cfg(test)]
mod tests;
