//! Running a pipeline: the input feeds a queue, `threads` workers (each a
//! thread of its own) run the processors, one output task writes (in
//! input order when `ordered`) and acknowledges.
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

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures_util::FutureExt;
use tokio::sync::{Mutex, Semaphore, mpsc, watch};
use wafer::metrics::{MessageCount, PipelineMetrics};
use wafer::{Message, Problem};

mod sink;
mod summary;
mod writer;

pub use sink::{Settled, Sink, Stopped, Stopping, Tracked, TrackedAck};
pub use summary::{PipelineError, Summary};

use self::sink::{Batch, Processed};
use self::writer::{DEAD_LETTER, Writer};
use crate::config::{OnError, PipelineConfig, Problems};
use crate::inputs::Input;
use crate::outputs::Output;
use crate::processors::Processor;
use crate::{BuildContext, inputs, outputs, processors};

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

/// A pipeline built from its config, ready to run.
pub struct Pipeline {
    name: String,
    input_name: String,
    input: Box<dyn Input>,
    processors: Vec<Box<dyn Processor>>,
    output_name: String,
    output: Box<dyn Output>,
    dead_letter: Option<Box<dyn Output>>,
    drop_failed: bool,
    threads: usize,
    ordered: bool,
    metrics: Arc<PipelineMetrics>,
}

/// The components of a config, built.
struct Components {
    input: Box<dyn Input>,
    processors: Vec<Box<dyn Processor>>,
    processor_names: Vec<String>,
    output: Box<dyn Output>,
    dead_letter: Option<Box<dyn Output>>,
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
        let components = Self::components(runtime, &config, false)?;
        let metrics = runtime.pipeline_metrics(&config.name, components.processor_names);
        Ok(Pipeline {
            input_name: config.input.name().to_string(),
            output_name: config.output.name().to_string(),
            name: config.name,
            input: components.input,
            processors: components.processors,
            output: components.output,
            dead_letter: components.dead_letter,
            drop_failed: matches!(config.on_error, OnError::Drop),
            threads: config.threads.max(1),
            ordered: config.ordered,
            metrics,
        })
    }

    /// What [`Pipeline::build`] would find wrong with `config`, found the
    /// same way (modules compiled, registry functions loaded) but taking
    /// nothing a running pipeline holds: no socket is bound, no metrics
    /// are registered. For `wafer check`, which may run beside the
    /// pipelines it checks. Call it outside async code.
    pub fn check(runtime: &Arc<wafer::Runtime>, config: PipelineConfig) -> Vec<Problem> {
        match Self::components(runtime, &config, true) {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        }
    }

    /// Builds every component of `config` (only to check them when
    /// `check_only`).
    fn components(
        runtime: &Arc<wafer::Runtime>,
        config: &PipelineConfig,
        check_only: bool,
    ) -> Result<Components, Vec<Problem>> {
        let mut problems = Problems::new(&config.file, config.entry.as_deref());
        let cx = BuildContext {
            runtime,
            pipeline: &config.name,
            threads: config.threads,
            base_dir: config.base_dir.as_deref(),
            check_only,
        };
        let input = inputs::build(&config.input, &cx)
            .map_err(|e| problems.component(&config.input, e))
            .ok();
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
        match (input, output) {
            (Some(input), Some(output)) if problems.is_empty() => Ok(Components {
                input,
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

    /// Its counters, as the runtime's metrics render them.
    pub fn metrics(&self) -> Arc<PipelineMetrics> {
        self.metrics.clone()
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
        mut self,
        stop: impl Future<Output = ()> + Send,
    ) -> Result<Summary, PipelineError> {
        // Fused: it is watched until the end of the run, and never polled
        // again once it resolved.
        let mut stop = std::pin::pin!(stop.fuse());
        let (stopping, stop_requested) = watch::channel(false);
        let stopping_signal = Stopping(stop_requested);
        let started = tokio::select! {
            started = self.start_outputs(&stopping_signal) => started,
            // Stopped before it started: nothing was taken.
            () = &mut stop => return Ok(*summary(&self.name, &self.metrics)),
        };
        if let Err((output, message)) = started {
            return Err(PipelineError::Output {
                summary: summary(&self.name, &self.metrics),
                pipeline: self.name,
                output,
                message,
            });
        }
        let counts = Arc::new(Counts::new(self.metrics.clone()));
        let in_flight = max_batches_in_flight(self.threads);
        let permits = Arc::new(Semaphore::new(in_flight));
        let (queue, batches) = mpsc::channel::<Batch>(in_flight);
        let (done, finished) = mpsc::channel::<Processed>(in_flight);
        // Set when the output failed or a worker panicked: the input stops.
        let (halt, mut halted) = watch::channel(false);
        let halt = Arc::new(halt);
        let stages = Arc::new(self.processors);
        let batches = Arc::new(Mutex::new(batches));
        let workers: Vec<_> = (0..self.threads)
            .map(|_| {
                let (stages, batches, done, counts, halt) = (
                    stages.clone(),
                    batches.clone(),
                    done.clone(),
                    counts.clone(),
                    halt.clone(),
                );
                let policy = Policy {
                    drop_failed: self.drop_failed,
                    dead_letter: self.dead_letter.is_some(),
                };
                let work = async move {
                    loop {
                        let batch = batches.lock().await.recv().await;
                        let Some(batch) = batch else { break };
                        let processed = process(&stages, batch, policy, &counts).await;
                        if done.send(processed).await.is_err() {
                            break;
                        }
                    }
                };
                // A thread of its own per worker, as Benthos' pipeline
                // threads are: guests run there, never on an async worker,
                // and the workers truly run in parallel (tasks that wake
                // each other on one async worker would not).
                let runtime = tokio::runtime::Handle::current();
                tokio::task::spawn_blocking(move || {
                    // A panic unwinds through the batch in hand, which
                    // answers its input (see `Owed`); the pipeline then
                    // stops, since what it lost cannot be acknowledged.
                    std::panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(work))).map_err(
                        |panic| {
                            let message = panic_message(panic.as_ref());
                            tracing::error!(error = %message, "A pipeline worker panicked; the messages it held are not written, and the pipeline stops.");
                            halt.send_replace(true);
                            message
                        },
                    )
                })
            })
            .collect();
        drop(done);
        // Only the workers hold the queue's receiving end: when the last
        // one ends (even by a panic), what is left in it is dropped, and
        // answered as not delivered.
        drop(batches);
        let writer = Writer {
            output: (self.output_name.clone(), self.output),
            dead_letter: self.dead_letter,
            drop_failed: self.drop_failed,
            ordered: self.ordered,
            counts: counts.clone(),
            halt,
        };
        let writer = tokio::spawn(writer.write_all(finished));
        let settlements = Arc::new(std::sync::Mutex::new(tokio::task::JoinSet::new()));
        let sink = Sink {
            queue,
            permits,
            next: 0,
            counts: counts.clone(),
            settlements: settlements.clone(),
            stopping: stopping_signal,
        };
        let input_name = self.input_name.clone();
        let stops_itself = self.input.stops_itself();
        let mut input = self.input.run(sink);
        let stopped = tokio::select! {
            ended = &mut input => Some(ended.err()),
            () = &mut stop => None,
            _ = halted.wait_for(|halted| *halted) => None,
        };
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
            let mut worker_failed = None;
            for worker in workers {
                let failed = match worker.await {
                    Ok(outcome) => outcome.err(),
                    Err(join) => Some(join.to_string()),
                };
                if let Some(message) = failed {
                    worker_failed.get_or_insert(message);
                }
            }
            let output_failed = match writer.await {
                Ok(outcome) => outcome.err(),
                Err(panicked) => Some(("output".to_string(), format!("panicked: {panicked}"))),
            };
            // Every batch is settled now; what the input does with that
            // (acknowledging upstream) finishes before the run does.
            let settling =
                std::mem::take(&mut *settlements.lock().unwrap_or_else(|p| p.into_inner()));
            settling.join_all().await;
            (worker_failed, output_failed)
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
        let summary = summary(&self.name, &self.metrics);
        // A panic first: it is a bug, and it lost messages for certain.
        if let Some(message) = worker_failed {
            return Err(PipelineError::Worker {
                pipeline: self.name,
                message,
                summary,
            });
        }
        if let Some((output, message)) = output_failed {
            return Err(PipelineError::Output {
                pipeline: self.name,
                output,
                message,
                summary,
            });
        }
        if let Some(message) = input_failed {
            return Err(PipelineError::Input {
                pipeline: self.name,
                input: input_name,
                message,
                summary,
            });
        }
        Ok(*summary)
    }

    /// Starts the output, then the dead-letter output; the first that
    /// could not start, named, and why.
    async fn start_outputs(&mut self, stopping: &Stopping) -> Result<(), (String, String)> {
        self.output
            .start(stopping.clone())
            .await
            .map_err(|e| (self.output_name.clone(), e))?;
        if let Some(dead_letter) = self.dead_letter.as_mut() {
            dead_letter
                .start(stopping.clone())
                .await
                .map_err(|e| (DEAD_LETTER.to_string(), e))?;
        }
        Ok(())
    }
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

/// How flagged messages are sorted out (`on_error`).
#[derive(Clone, Copy)]
struct Policy {
    drop_failed: bool,
    dead_letter: bool,
}

/// One batch through every processor, its flagged messages sorted out by
/// the error policy; a tracked batch one message at a time, those that
/// fail and may be delivered again handed back to the input.
async fn process(
    stages: &[Box<dyn Processor>],
    batch: Batch,
    policy: Policy,
    counts: &Counts,
) -> Processed {
    let Batch {
        seq,
        messages,
        redeliverable,
        mut owed,
    } = batch;
    let Some(redeliverable) = redeliverable else {
        let processed = run_stages(stages, messages, counts).await;
        let (messages, dead) = sort_flagged(processed, policy, counts);
        return Processed {
            seq,
            messages,
            dead,
            owed,
        };
    };
    let mut kept = Vec::with_capacity(messages.len());
    let mut dead = Vec::new();
    let mut settled = Vec::with_capacity(messages.len());
    for (message, redeliverable) in messages.into_iter().zip(redeliverable) {
        let mut parts = run_stages(stages, vec![message], counts).await;
        let failure = parts.iter().find_map(|part| part.error.clone());
        if let Some(error) = failure.filter(|_| redeliverable) {
            counts.add(MessageCount::Failed, 1);
            counts.add(MessageCount::Retried, 1);
            counts.warn_once(&error, "it is delivered again");
            settled.push(Settled::Retry(error));
            continue;
        }
        if parts.len() > 1 {
            for (index, part) in parts.iter_mut().enumerate() {
                part.metadata
                    .insert(PART_METADATA.to_string(), index.to_string());
            }
        }
        let (parts, failed) = sort_flagged(parts, policy, counts);
        kept.extend(parts);
        dead.extend(failed);
        settled.push(Settled::Done);
    }
    owed.record(settled);
    Processed {
        seq,
        messages: kept,
        dead,
        owed,
    }
}

/// `messages` through every processor, in order.
async fn run_stages(
    stages: &[Box<dyn Processor>],
    mut messages: Vec<Message>,
    counts: &Counts,
) -> Vec<Message> {
    for (index, stage) in stages.iter().enumerate() {
        let started = Instant::now();
        let before = messages.len();
        messages = stage.process(messages).await;
        if messages.len() < before {
            counts.add(MessageCount::Filtered, (before - messages.len()) as u64);
        }
        counts
            .metrics
            .record_processor(index, started.elapsed(), messages.len() as u64);
    }
    messages
}

/// The messages to write and those to dead-letter: flagged ones are
/// dropped, dead-lettered or kept in place (Benthos' `continue`) as the
/// policy says.
fn sort_flagged(
    messages: Vec<Message>,
    policy: Policy,
    counts: &Counts,
) -> (Vec<Message>, Vec<Message>) {
    if messages.iter().all(|m| m.error.is_none()) {
        return (messages, Vec::new());
    }
    let mut dead = Vec::new();
    let mut kept = Vec::with_capacity(messages.len());
    for mut message in messages {
        let Some(error) = message.error.clone() else {
            kept.push(message);
            continue;
        };
        counts.add(MessageCount::Failed, 1);
        counts.warn_once(
            &error,
            "later failures are logged at debug level and counted in the summary",
        );
        message.metadata.insert(ERROR_METADATA.to_string(), error);
        if policy.drop_failed {
            counts.add(MessageCount::Dropped, 1);
        } else if policy.dead_letter {
            dead.push(message);
        } else {
            kept.push(message);
        }
    }
    (kept, dead)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;
    use std::time::Duration;

    use tokio::sync::oneshot;
    use wafer::Message;

    use super::*;
    use crate::BoxFuture;
    use crate::outputs::Rejected;

    /// Acknowledgements an input waits for, in the order it sent.
    type Acks = Arc<StdMutex<Vec<oneshot::Receiver<Result<(), String>>>>>;

    /// Sends each of its messages as a batch of one, keeping the
    /// acknowledgements.
    struct Batches(Vec<&'static str>, Acks);

    impl Input for Batches {
        fn run(self: Box<Self>, mut sink: Sink) -> BoxFuture<'static, Result<(), String>> {
            Box::pin(async move {
                for text in self.0 {
                    let Ok(acked) = sink.send_acked(vec![Message::new(text)]).await else {
                        return Ok(());
                    };
                    self.1.lock().unwrap().push(acked);
                }
                Ok(())
            })
        }
    }

    /// Panics on the message `boom`: a bug in a processor.
    struct PanicsOnBoom;

    impl Processor for PanicsOnBoom {
        fn process(&self, batch: Vec<Message>) -> BoxFuture<'_, Vec<Message>> {
            Box::pin(async move {
                assert!(batch.iter().all(|m| m.bytes != "boom"), "a bug, on purpose");
                batch
            })
        }
    }

    /// Keeps what it is given.
    struct Collect(Arc<StdMutex<Vec<String>>>);

    impl Output for Collect {
        fn write<'a>(
            &'a mut self,
            batch: &'a [Message],
        ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
            let texts = batch
                .iter()
                .map(|m| String::from_utf8_lossy(&m.bytes).into_owned());
            self.0.lock().unwrap().extend(texts);
            Box::pin(async { Ok(Vec::new()) })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_panic_fails_the_run_and_answers_its_batch() {
        let acks = Acks::default();
        let written = Arc::new(StdMutex::new(Vec::new()));
        let pipeline = Pipeline {
            name: "p".into(),
            input_name: "input".into(),
            input: Box::new(Batches(vec!["a", "boom", "b"], acks.clone())),
            processors: vec![Box::new(PanicsOnBoom)],
            output_name: "output".into(),
            output: Box::new(Collect(written.clone())),
            dead_letter: None,
            drop_failed: false,
            threads: 1,
            ordered: true,
            metrics: Arc::new(PipelineMetrics::new("p", vec!["panics".into()])),
        };
        let error = pipeline.run(std::future::pending()).await.unwrap_err();
        let PipelineError::Worker { message, .. } = &error else {
            panic!("not a worker's failure: {error}")
        };
        assert!(message.contains("a bug, on purpose"), "{message}");
        assert_eq!(*written.lock().unwrap(), ["a"]);
        let mut acks = std::mem::take(&mut *acks.lock().unwrap()).into_iter();
        assert_eq!(acks.next().unwrap().await.unwrap(), Ok(()));
        // The batch the worker held, and any queued after it once no
        // worker was left: answered, never just dropped.
        for ack in acks {
            assert_eq!(ack.await.unwrap(), Err(NOT_FINISHED.to_string()));
        }
        assert!(error.summary().received >= 2, "{:?}", error.summary());
    }

    /// A pipeline of one worker from `input` straight to `output`.
    fn straight(input: impl Input + 'static, output: impl Output + 'static) -> Pipeline {
        Pipeline {
            name: "p".into(),
            input_name: "input".into(),
            input: Box::new(input),
            processors: Vec::new(),
            output_name: "output".into(),
            output: Box::new(output),
            dead_letter: None,
            drop_failed: false,
            threads: 1,
            ordered: true,
            metrics: Arc::new(PipelineMetrics::new("p", Vec::new())),
        }
    }

    /// Rejects each message whose text starts with `bad`, and keeps the
    /// others.
    struct Picky(Arc<StdMutex<Vec<String>>>);

    impl Output for Picky {
        fn write<'a>(
            &'a mut self,
            batch: &'a [Message],
        ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
            let mut rejected = Vec::new();
            for (index, message) in batch.iter().enumerate() {
                let text = String::from_utf8_lossy(&message.bytes).into_owned();
                if text.starts_with("bad") {
                    rejected.push(Rejected {
                        index,
                        error: format!("cannot take {text}"),
                    });
                } else {
                    self.0.lock().unwrap().push(text);
                }
            }
            Box::pin(async move { Ok(rejected) })
        }
    }

    /// Keeps the messages it is given, metadata and all.
    struct Keep(Arc<StdMutex<Vec<Message>>>);

    impl Output for Keep {
        fn write<'a>(
            &'a mut self,
            batch: &'a [Message],
        ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
            self.0.lock().unwrap().extend(batch.iter().cloned());
            Box::pin(async { Ok(Vec::new()) })
        }
    }

    #[test]
    fn a_run_can_be_spawned() {
        // As `wafer run` spawns each one on the async runtime.
        fn spawnable<T: Send + 'static>(_: &T) {}
        let pipeline = straight(Endless(Acks::default()), Collect(Arc::default()));
        spawnable(&pipeline.run(std::future::pending()));
    }

    /// Every acknowledgement, in order.
    async fn answers(acks: &Acks) -> Vec<Result<(), String>> {
        let mut answers = Vec::new();
        let taken = std::mem::take(&mut *acks.lock().unwrap());
        for ack in taken {
            answers.push(ack.await.unwrap());
        }
        answers
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_the_output_rejects_goes_to_the_dead_letter_output_and_the_rest_is_written() {
        let (acks, written, dead) = (Acks::default(), Arc::default(), Arc::default());
        let input = Batches(vec!["a", "bad b", "c", "bad d"], acks.clone());
        let mut pipeline = straight(input, Picky(Arc::clone(&written)));
        pipeline.dead_letter = Some(Box::new(Keep(Arc::clone(&dead))));
        let summary = pipeline.run(std::future::pending()).await.unwrap();
        assert_eq!(*written.lock().unwrap(), ["a", "c"]);
        let dead = dead.lock().unwrap().clone();
        let texts: Vec<_> = dead.iter().map(|m| m.bytes.clone()).collect();
        assert_eq!(texts, ["bad b", "bad d"]);
        assert_eq!(dead[0].metadata[ERROR_METADATA], "cannot take bad b");
        assert_eq!(dead[0].error.as_deref(), Some("cannot take bad b"));
        assert!(answers(&acks).await.iter().all(Result::is_ok));
        assert_eq!(
            (summary.processed, summary.failed, summary.dead_lettered),
            (2, 2, 2)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rejected_message_is_dropped_without_a_dead_letter_output() {
        for drop_failed in [true, false] {
            let (acks, written) = (Acks::default(), Arc::default());
            let input = Batches(vec!["bad a", "b"], acks.clone());
            let mut pipeline = straight(input, Picky(Arc::clone(&written)));
            pipeline.drop_failed = drop_failed;
            let summary = pipeline.run(std::future::pending()).await.unwrap();
            assert_eq!(*written.lock().unwrap(), ["b"]);
            assert!(answers(&acks).await.iter().all(Result::is_ok));
            assert_eq!(
                (summary.processed, summary.failed, summary.dropped),
                (1, 1, 1)
            );
        }
    }

    /// Waits in its writes for something that never comes, for as long as
    /// the pipeline is not stopping, then fails; says when a write began.
    struct Stuck {
        stopping: Option<Stopping>,
        writing: Arc<tokio::sync::Notify>,
    }

    impl Output for Stuck {
        fn start(&mut self, stopping: Stopping) -> BoxFuture<'_, Result<(), String>> {
            self.stopping = Some(stopping);
            Box::pin(async { Ok(()) })
        }

        fn write<'a>(
            &'a mut self,
            _: &'a [Message],
        ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
            self.writing.notify_one();
            let stopping = self.stopping.as_mut().expect("started");
            Box::pin(async move {
                let waited = stopping
                    .bounded(Duration::from_millis(50), std::future::pending::<()>())
                    .await;
                assert!(waited.is_none());
                Err("gave up".to_string())
            })
        }
    }

    /// Sends `a`, then waits until it is stopped.
    struct Endless(Acks);

    impl Input for Endless {
        fn run(self: Box<Self>, mut sink: Sink) -> BoxFuture<'static, Result<(), String>> {
            Box::pin(async move {
                if let Ok(acked) = sink.send_acked(vec![Message::new("a")]).await {
                    self.0.lock().unwrap().push(acked);
                }
                std::future::pending().await
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stop_ends_an_output_that_waits_and_its_batch_is_not_acknowledged() {
        // Stopped while the input runs, and after it ended on its own.
        for endless in [true, false] {
            let acks = Acks::default();
            let writing = Arc::new(tokio::sync::Notify::new());
            let output = Stuck {
                stopping: None,
                writing: writing.clone(),
            };
            let pipeline = if endless {
                straight(Endless(acks.clone()), output)
            } else {
                straight(Batches(vec!["a"], acks.clone()), output)
            };
            let run = pipeline.run(async move { writing.notified().await });
            let error = tokio::time::timeout(Duration::from_secs(60), run)
                .await
                .expect("the run ends")
                .unwrap_err();
            let PipelineError::Output { message, .. } = &error else {
                panic!("not the output's failure: {error}")
            };
            assert_eq!(message, "gave up");
            assert_eq!(answers(&acks).await, [Err("gave up".to_string())]);
        }
    }

    /// Cannot start.
    struct Unreachable;

    impl Output for Unreachable {
        fn start(&mut self, _: Stopping) -> BoxFuture<'_, Result<(), String>> {
            Box::pin(async { Err("cannot connect".to_string()) })
        }

        fn write<'a>(
            &'a mut self,
            _: &'a [Message],
        ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
            unreachable!("never started")
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_output_that_cannot_start_fails_the_run_before_its_input_runs() {
        let acks = Acks::default();
        let mut pipeline = straight(Batches(vec!["a"], acks.clone()), Collect(Arc::default()));
        pipeline.dead_letter = Some(Box::new(Unreachable));
        let error = pipeline.run(std::future::pending()).await.unwrap_err();
        let PipelineError::Output {
            output, message, ..
        } = &error
        else {
            panic!("not the output's failure: {error}")
        };
        assert_eq!(
            (output.as_str(), message.as_str()),
            (DEAD_LETTER, "cannot connect")
        );
        assert_eq!(error.summary().received, 0);
        assert!(acks.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn bounded_work_has_all_its_time_until_the_stop_then_its_patience() {
        let (stop, mut stopping) = Stopping::channel();
        let patience = Duration::from_millis(20);
        assert_eq!(stopping.bounded(patience, async { 7 }).await, Some(7));
        let slow = tokio::time::sleep(Duration::from_millis(100));
        assert_eq!(stopping.bounded(patience, slow).await, Some(()));
        stop.send_replace(true);
        let never = std::future::pending::<()>();
        assert_eq!(stopping.bounded(patience, never).await, None);
    }

    #[test]
    fn a_check_binds_no_socket_and_a_build_does() {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = busy.local_addr().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.yaml");
        std::fs::write(
            &path,
            format!("input: {{http_server: {{address: \"{address}\"}}}}\noutput: {{drop: {{}}}}\n"),
        )
        .unwrap();
        let config = PipelineConfig::from_file(&path).unwrap();
        let runtime = Arc::new(wafer::Runtime::new(wafer::Registry::default()).unwrap());
        assert!(Pipeline::check(&runtime, config.clone()).is_empty());
        let Err(problems) = Pipeline::build(&runtime, config) else {
            panic!("built on a busy address")
        };
        assert!(
            problems[0].message.contains("cannot listen on"),
            "{problems:?}"
        );
        std::fs::write(
            &path,
            "input: {http_server: {address: \"not an address\"}}\noutput: {drop: {}}\n",
        )
        .unwrap();
        let config = PipelineConfig::from_file(&path).unwrap();
        let problems = Pipeline::check(&runtime, config);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0]
                .message
                .contains("cannot listen on not an address"),
            "{problems:?}"
        );
    }
}
