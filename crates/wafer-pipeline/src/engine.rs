//! Running a pipeline: the input feeds a bounded queue, `threads` workers
//! (each a thread of its own) run the processors, one output task writes (in input order when
//! `ordered`) and acknowledges.
//!
//! Delivery is at least once: a batch is acknowledged to its input only
//! after the output (and the dead-letter output, for its flagged messages)
//! confirmed it. Every queue is bounded, so a slow output slows the input
//! instead of filling memory: at most `2 × threads` batches wait for a
//! worker and as many for the output.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::{Mutex, mpsc, oneshot, watch};
use wafer::metrics::{MessageCount, PipelineMetrics};
use wafer::{Message, Problem};

use crate::config::{OnError, PipelineConfig, Problems};
use crate::inputs::Input;
use crate::outputs::Output;
use crate::processors::Processor;
use crate::{BuildContext, inputs, outputs, processors};

/// The metadata key of the error a flagged message carries.
pub const ERROR_METADATA: &str = "error";

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

/// The input side of the queue: what an input hands its messages to.
pub struct Sink {
    queue: mpsc::Sender<Batch>,
    next: u64,
    counts: Arc<Counts>,
}

/// The pipeline is stopping: the input should return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

/// One batch from the input, on its way.
struct Batch {
    seq: u64,
    messages: Vec<Message>,
    ack: Option<oneshot::Sender<Result<(), String>>>,
}

/// A batch the processors are done with.
struct Processed {
    seq: u64,
    messages: Vec<Message>,
    dead: Vec<Message>,
    ack: Option<oneshot::Sender<Result<(), String>>>,
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
}

/// What a finished run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The pipeline's name.
    pub name: String,
    /// Messages the input produced.
    pub received: u64,
    /// Messages the output confirmed.
    pub processed: u64,
    /// Flagged messages dropped by `on_error: drop`.
    pub dropped: u64,
    /// Messages a processor flagged with an error.
    pub failed: u64,
    /// Flagged messages the dead-letter output confirmed.
    pub dead_lettered: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pipeline {}: received {}, processed {}, dropped {}, failed {}",
            self.name, self.received, self.processed, self.dropped, self.failed
        )?;
        if self.dead_lettered > 0 {
            write!(f, " ({} to the dead-letter output)", self.dead_lettered)?;
        }
        Ok(())
    }
}

/// Why a pipeline stopped before the end of its input.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The input failed; what it had produced was processed.
    #[error("pipeline {pipeline}: input {input}: {message}")]
    Input {
        /// The pipeline.
        pipeline: String,
        /// The input's name.
        input: String,
        /// What failed.
        message: String,
        /// What was done before.
        summary: Box<Summary>,
    },
    /// An output failed; the messages it did not confirm were not
    /// acknowledged.
    #[error("pipeline {pipeline}: output {output}: {message}")]
    Output {
        /// The pipeline.
        pipeline: String,
        /// The output's name.
        output: String,
        /// What failed.
        message: String,
        /// What was done before.
        summary: Box<Summary>,
    },
}

impl PipelineError {
    /// What the run did before it failed.
    pub fn summary(&self) -> &Summary {
        match self {
            PipelineError::Input { summary, .. } | PipelineError::Output { summary, .. } => summary,
        }
    }
}

impl Sink {
    /// Queues `messages` as one batch, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// [`Stopped`] when the pipeline no longer takes input.
    pub async fn send(&mut self, messages: Vec<Message>) -> Result<(), Stopped> {
        self.push(messages, None).await
    }

    /// Queues `messages` and answers once the output confirmed them (or
    /// with why it did not): for inputs that acknowledge upstream.
    ///
    /// # Errors
    ///
    /// [`Stopped`] when the pipeline no longer takes input.
    pub async fn send_acked(
        &mut self,
        messages: Vec<Message>,
    ) -> Result<oneshot::Receiver<Result<(), String>>, Stopped> {
        let (ack, delivered) = oneshot::channel();
        self.push(messages, Some(ack)).await?;
        Ok(delivered)
    }

    async fn push(
        &mut self,
        messages: Vec<Message>,
        ack: Option<oneshot::Sender<Result<(), String>>>,
    ) -> Result<(), Stopped> {
        let count = messages.len() as u64;
        let batch = Batch {
            seq: self.next,
            messages,
            ack,
        };
        self.queue.send(batch).await.map_err(|_| Stopped)?;
        self.next += 1;
        self.counts.add(MessageCount::Received, count);
        Ok(())
    }
}

impl Pipeline {
    /// Builds every component of `config`: modules are read and compiled
    /// and registry functions loaded. It compiles on this thread: call it
    /// outside async code.
    ///
    /// # Errors
    ///
    /// Every problem found, each naming the component and field.
    pub fn build(
        runtime: &Arc<wafer::Runtime>,
        config: PipelineConfig,
    ) -> Result<Pipeline, Vec<Problem>> {
        let mut problems = Problems::new(&config.file, config.entry.as_deref());
        let cx = BuildContext {
            runtime,
            pipeline: &config.name,
            threads: config.threads,
            base_dir: config.base_dir.as_deref(),
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
            (Some(input), Some(output)) if problems.is_empty() => {
                let metrics = runtime.pipeline_metrics(&config.name, stage_names);
                Ok(Pipeline {
                    input_name: config.input.name().to_string(),
                    output_name: config.output.name().to_string(),
                    name: config.name,
                    input,
                    processors: stages,
                    output,
                    dead_letter,
                    drop_failed: matches!(config.on_error, OnError::Drop),
                    threads: config.threads.max(1),
                    ordered: config.ordered,
                    metrics,
                })
            }
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
    /// processed and written, or (when an output fails) left
    /// unacknowledged.
    ///
    /// # Errors
    ///
    /// When the input or an output failed; the error carries the summary.
    pub async fn run(
        self,
        stop: impl Future<Output = ()> + Send,
    ) -> Result<Summary, PipelineError> {
        let counts = Arc::new(Counts {
            metrics: self.metrics.clone(),
            warned: AtomicBool::new(false),
        });
        let depth = self.threads * 2;
        let (queue, batches) = mpsc::channel::<Batch>(depth);
        let (done, finished) = mpsc::channel::<Processed>(depth);
        let (failing, mut output_failed) = watch::channel(false);
        let stages = Arc::new(self.processors);
        let batches = Arc::new(Mutex::new(batches));
        let workers: Vec<_> = (0..self.threads)
            .map(|_| {
                let (stages, batches, done, counts) = (
                    stages.clone(),
                    batches.clone(),
                    done.clone(),
                    counts.clone(),
                );
                let drop_failed = self.drop_failed;
                let dead_letter = self.dead_letter.is_some();
                let work = async move {
                    loop {
                        let batch = batches.lock().await.recv().await;
                        let Some(batch) = batch else { break };
                        let processed =
                            process(&stages, batch, drop_failed, dead_letter, &counts).await;
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
                tokio::task::spawn_blocking(move || runtime.block_on(work))
            })
            .collect();
        drop(done);
        let writer = tokio::spawn(write_all(
            (self.output_name.clone(), self.output),
            self.dead_letter,
            finished,
            self.ordered,
            counts.clone(),
            failing,
        ));
        let sink = Sink {
            queue,
            next: 0,
            counts: counts.clone(),
        };
        let input_name = self.input_name.clone();
        let input_failed = tokio::select! {
            ended = self.input.run(sink) => ended.err(),
            () = stop => None,
            _ = output_failed.wait_for(|failed| *failed) => None,
        };
        for worker in workers {
            let _ = worker.await;
        }
        let output_failed = match writer.await {
            Ok(outcome) => outcome.err(),
            Err(panicked) => Some(("output".to_string(), format!("panicked: {panicked}"))),
        };
        let summary = Summary {
            name: self.name.clone(),
            received: self.metrics.get(MessageCount::Received),
            processed: self.metrics.get(MessageCount::Processed),
            dropped: self.metrics.get(MessageCount::Dropped),
            failed: self.metrics.get(MessageCount::Failed),
            dead_lettered: self.metrics.get(MessageCount::DeadLettered),
        };
        if let Some((output, message)) = output_failed {
            return Err(PipelineError::Output {
                pipeline: self.name,
                output,
                message,
                summary: Box::new(summary),
            });
        }
        if let Some(message) = input_failed {
            return Err(PipelineError::Input {
                pipeline: self.name,
                input: input_name,
                message,
                summary: Box::new(summary),
            });
        }
        Ok(summary)
    }
}

/// One batch through every processor, its flagged messages sorted out by
/// the error policy.
async fn process(
    stages: &[Box<dyn Processor>],
    batch: Batch,
    drop_failed: bool,
    dead_letter: bool,
    counts: &Counts,
) -> Processed {
    let mut messages = batch.messages;
    for (index, stage) in stages.iter().enumerate() {
        let started = Instant::now();
        messages = stage.process(messages).await;
        counts
            .metrics
            .record_processor(index, started.elapsed(), messages.len() as u64);
    }
    let mut dead = Vec::new();
    if messages.iter().any(|m| m.error.is_some()) {
        let mut kept = Vec::with_capacity(messages.len());
        for mut message in messages {
            let Some(error) = message.error.clone() else {
                kept.push(message);
                continue;
            };
            counts.add(MessageCount::Failed, 1);
            if !counts.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(%error, "A processor failed on a message (later failures are logged at debug level and counted in the summary).");
            } else {
                tracing::debug!(%error, "A processor failed on a message.");
            }
            message.metadata.insert(ERROR_METADATA.to_string(), error);
            if drop_failed {
                counts.add(MessageCount::Dropped, 1);
            } else if dead_letter {
                dead.push(message);
            } else {
                // Flagged, in its place (Benthos' `continue`).
                kept.push(message);
            }
        }
        messages = kept;
    }
    Processed {
        seq: batch.seq,
        messages,
        dead,
        ack: batch.ack,
    }
}

/// The output task: writes each batch (in input order when `ordered`),
/// then acknowledges it. After a failure it writes nothing more and
/// acknowledges nothing, but keeps draining so that nothing upstream
/// blocks; `failing` tells the input to stop.
async fn write_all(
    (output_name, mut output): (String, Box<dyn Output>),
    mut dead_letter: Option<Box<dyn Output>>,
    mut finished: mpsc::Receiver<Processed>,
    ordered: bool,
    counts: Arc<Counts>,
    failing: watch::Sender<bool>,
) -> Result<(), (String, String)> {
    let mut failure: Option<(String, String)> = None;
    let mut waiting: BTreeMap<u64, Processed> = BTreeMap::new();
    let mut next = 0u64;
    while let Some(processed) = finished.recv().await {
        let ready: Vec<Processed> = if ordered {
            waiting.insert(processed.seq, processed);
            let mut ready = Vec::new();
            while let Some(batch) = waiting.remove(&next) {
                ready.push(batch);
                next += 1;
            }
            ready
        } else {
            vec![processed]
        };
        for batch in ready {
            if let Some((_, message)) = &failure {
                if let Some(ack) = batch.ack {
                    let _ = ack.send(Err(message.clone()));
                }
                continue;
            }
            let written = write_batch(
                (&output_name, &mut *output),
                &mut dead_letter,
                &batch,
                &counts,
            )
            .await;
            match written {
                Ok(()) => {
                    if let Some(ack) = batch.ack {
                        let _ = ack.send(Ok(()));
                    }
                }
                Err((component, message)) => {
                    tracing::error!(output = %component, error = %message, "Output failed; the pipeline stops and acknowledges nothing more.");
                    if let Some(ack) = batch.ack {
                        let _ = ack.send(Err(message.clone()));
                    }
                    let _ = failing.send(true);
                    failure = Some((component, message));
                }
            }
        }
    }
    let closed = output.close().await.map_err(|e| (output_name, e));
    match failure {
        Some(failure) => Err(failure),
        None => closed,
    }
}

/// Writes a batch's messages and its dead letters.
async fn write_batch(
    (output_name, output): (&str, &mut dyn Output),
    dead_letter: &mut Option<Box<dyn Output>>,
    batch: &Processed,
    counts: &Counts,
) -> Result<(), (String, String)> {
    if !batch.dead.is_empty()
        && let Some(dead_letter) = dead_letter.as_mut()
    {
        dead_letter
            .write(&batch.dead)
            .await
            .map_err(|e| ("on_error.output".to_string(), e))?;
        counts.add(MessageCount::DeadLettered, batch.dead.len() as u64);
    }
    if !batch.messages.is_empty() {
        output
            .write(&batch.messages)
            .await
            .map_err(|e| (output_name.to_string(), e))?;
    }
    counts.add(MessageCount::Processed, batch.messages.len() as u64);
    Ok(())
}
