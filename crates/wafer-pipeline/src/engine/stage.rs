//! The processing half of a running pipeline: `threads` workers (each a
//! thread of its own) run the processors on the batches of the pipeline's
//! queue, and one output task writes them (in input order when
//! `ordered`). A reload may replace a [`Stage`] while its input runs on:
//! the running one is retired (its workers finish the batches in their
//! hands and take no more, its output writes them), then the next one
//! takes the queue from the first batch not taken.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;
use wafer::Message;
use wafer::metrics::{MessageCount, PipelineMetrics};

use super::sink::{Batch, Processed, Settled, Stopping};
use super::writer::{DEAD_LETTER, Writer};
use super::{Counts, ERROR_METADATA, PART_METADATA, max_batches_in_flight, panic_message};
use crate::Dependencies;
use crate::outputs::Output;
use crate::processors::Processor;

/// What a pipeline does with its input's messages, built: processors,
/// output, dead-letter output, and how they run.
pub struct Stage {
    pub(super) processors: Vec<Box<dyn Processor>>,
    pub(super) output_name: String,
    pub(super) output: Box<dyn Output>,
    pub(super) dead_letter: Option<Box<dyn Output>>,
    pub(super) drop_failed: bool,
    pub(super) threads: usize,
    pub(super) ordered: bool,
    pub(super) metrics: Arc<PipelineMetrics>,
    pub(super) dependencies: Dependencies,
    /// Set when a reload retires it: its workers take no more batches,
    /// its outputs are told ([`Stopping::replaced`]).
    pub(super) retire: watch::Sender<bool>,
}

impl Stage {
    /// What its processors and outputs loaded as they were built: the
    /// module files and the registry functions they call.
    pub fn dependencies(&self) -> &Dependencies {
        &self.dependencies
    }
}

/// The pipeline's queue of batches, which the stages take in turn.
#[derive(Clone)]
pub(super) struct Queue {
    pub(super) batches: Arc<Mutex<mpsc::Receiver<Batch>>>,
    /// The sequence number after the last batch a worker took.
    pub(super) taken: Arc<AtomicU64>,
}

/// A stage running.
pub(super) struct RunningStage {
    in_flight: usize,
    workers: Vec<JoinHandle<Result<(), String>>>,
    writer: JoinHandle<Result<(), (String, String)>>,
    retire: watch::Sender<bool>,
}

/// How a stage's run ended badly: a worker's panic, the output's failure
/// (named).
pub(super) type StageFailures = (Option<String>, Option<(String, String)>);

impl Stage {
    /// The most batches in flight for this stage's workers.
    pub(super) fn in_flight(&self) -> usize {
        max_batches_in_flight(self.threads)
    }

    /// Starts the output, then the dead-letter output; the first that
    /// could not start, named, and why.
    pub(super) async fn start_outputs(
        &mut self,
        stopping: &Stopping,
    ) -> Result<(), (String, String)> {
        let stopping = &stopping.for_stage(&self.retire);
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

    /// Runs the workers and the output task on `queue`, from the first
    /// batch not taken yet; `halt` is set when a worker panics or the
    /// output fails.
    pub(super) fn run(self, queue: &Queue, halt: &Arc<watch::Sender<bool>>) -> RunningStage {
        let counts = Arc::new(Counts::new(self.metrics.clone()));
        let (done, finished) = mpsc::channel::<Processed>(self.in_flight());
        let threads = self.threads;
        let retired = self.retire.subscribe();
        let retire = self.retire;
        let processors = Arc::new(self.processors);
        let policy = Policy {
            drop_failed: self.drop_failed,
            dead_letter: self.dead_letter.is_some(),
        };
        let workers = (0..threads)
            .map(|_| {
                let work = work(
                    (processors.clone(), policy),
                    queue.clone(),
                    done.clone(),
                    counts.clone(),
                    retired.clone(),
                );
                let halt = halt.clone();
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
        let writer = Writer {
            output: (self.output_name, self.output),
            dead_letter: self.dead_letter,
            drop_failed: self.drop_failed,
            ordered: self.ordered,
            next: queue.taken.load(Ordering::Acquire),
            counts,
            halt: halt.clone(),
        };
        RunningStage {
            in_flight: max_batches_in_flight(threads),
            workers,
            writer: tokio::spawn(writer.write_all(finished)),
            retire,
        }
    }
}

impl RunningStage {
    /// The most batches in flight it was sized for.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Its workers take no more batches: those in their hands are
    /// finished and written.
    pub(super) fn retire(&self) {
        self.retire.send_replace(true);
    }

    /// Waits for the workers (once the queue is closed, or retired) and
    /// the output task.
    pub(super) async fn finish(self) -> StageFailures {
        let mut worker_failed = None;
        for worker in self.workers {
            let failed = match worker.await {
                Ok(outcome) => outcome.err(),
                Err(join) => Some(join.to_string()),
            };
            if let Some(message) = failed {
                worker_failed.get_or_insert(message);
            }
        }
        let output_failed = match self.writer.await {
            Ok(outcome) => outcome.err(),
            Err(panicked) => Some(("output".to_string(), format!("panicked: {panicked}"))),
        };
        (worker_failed, output_failed)
    }
}

/// One worker: batches from `queue` through the processors, to the output
/// task, until the queue ends or the stage is retired.
async fn work(
    (processors, policy): (Arc<Vec<Box<dyn Processor>>>, Policy),
    queue: Queue,
    done: mpsc::Sender<Processed>,
    counts: Arc<Counts>,
    mut retired: watch::Receiver<bool>,
) {
    loop {
        let batch = {
            let mut batches = tokio::select! {
                biased;
                _ = retired.wait_for(|retired| *retired) => break,
                batches = queue.batches.lock() => batches,
            };
            let batch = tokio::select! {
                biased;
                _ = retired.wait_for(|retired| *retired) => break,
                batch = batches.recv() => batch,
            };
            // Taken under the lock: the queue hands batches out in order.
            if let Some(batch) = &batch {
                queue.taken.fetch_max(batch.seq + 1, Ordering::AcqRel);
            }
            batch
        };
        let Some(batch) = batch else { break };
        let processed = process(&processors, batch, policy, &counts).await;
        if done.send(processed).await.is_err() {
            break;
        }
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
