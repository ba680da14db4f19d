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

use tokio::sync::{Mutex, Semaphore, mpsc, watch};
use wafer::metrics::{MessageCount, PipelineMetrics};
use wafer::{Message, Problem};

mod sink;
mod summary;
mod writer;

pub use sink::{Settled, Sink, Stopped, Stopping, Tracked, TrackedAck};
pub use summary::{PipelineError, Summary};

use self::sink::{Batch, Processed};
use self::writer::write_all;
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
/// failure was logged at warning level yet.
struct Counts {
    metrics: Arc<PipelineMetrics>,
    warned: AtomicBool,
}

impl Counts {
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
    /// # Errors
    ///
    /// When the input or an output failed, or a worker panicked; the
    /// error carries the summary.
    pub async fn run(
        self,
        stop: impl Future<Output = ()> + Send,
    ) -> Result<Summary, PipelineError> {
        let counts = Arc::new(Counts {
            metrics: self.metrics.clone(),
            warned: AtomicBool::new(false),
        });
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
        let writer = tokio::spawn(write_all(
            (self.output_name.clone(), self.output),
            self.dead_letter,
            finished,
            self.ordered,
            counts.clone(),
            halt,
        ));
        let settlements = Arc::new(std::sync::Mutex::new(tokio::task::JoinSet::new()));
        let (stopping, stop_requested) = watch::channel(false);
        let sink = Sink {
            queue,
            permits,
            next: 0,
            counts: counts.clone(),
            settlements: settlements.clone(),
            stopping: Stopping(stop_requested),
        };
        let input_name = self.input_name.clone();
        let stops_itself = self.input.stops_itself();
        let mut input = self.input.run(sink);
        let stopped = tokio::select! {
            ended = &mut input => Some(ended.err()),
            () = stop => None,
            _ = halted.wait_for(|halted| *halted) => None,
        };
        let input_failed = match stopped {
            Some(failed) => failed,
            // Told, an input that stops itself hands back what it holds
            // and returns; any other is dropped where it stands.
            None if stops_itself => {
                stopping.send_replace(true);
                input.await.err()
            }
            None => {
                // Its sink goes with it, which lets the workers finish.
                drop(input);
                None
            }
        };
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
        let settling = std::mem::take(&mut *settlements.lock().unwrap_or_else(|p| p.into_inner()));
        settling.join_all().await;
        let summary = Box::new(Summary {
            name: self.name.clone(),
            received: self.metrics.get(MessageCount::Received),
            processed: self.metrics.get(MessageCount::Processed),
            dropped: self.metrics.get(MessageCount::Dropped),
            failed: self.metrics.get(MessageCount::Failed),
            dead_lettered: self.metrics.get(MessageCount::DeadLettered),
            filtered: self.metrics.get(MessageCount::Filtered),
            retried: self.metrics.get(MessageCount::Retried),
        });
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
    use tokio::sync::oneshot;
    use wafer::Message;

    use super::*;
    use crate::BoxFuture;

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
        fn write<'a>(&'a mut self, batch: &'a [Message]) -> BoxFuture<'a, Result<(), String>> {
            let texts = batch
                .iter()
                .map(|m| String::from_utf8_lossy(&m.bytes).into_owned());
            self.0.lock().unwrap().extend(texts);
            Box::pin(async { Ok(()) })
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
