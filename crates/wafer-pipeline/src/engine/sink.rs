//! The input's side of a running pipeline: [`Sink`] queues batches, and
//! each batch holds its place among those in flight until the output is
//! done with it ([`Owed`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use wafer::Message;
use wafer::metrics::MessageCount;

use super::{Counts, NOT_FINISHED};

/// The input side of the queue: what an input hands its messages to.
pub struct Sink {
    pub(super) queue: mpsc::Sender<Batch>,
    pub(super) permits: Arc<Semaphore>,
    pub(super) next: u64,
    pub(super) counts: Arc<Counts>,
    pub(super) settlements: Arc<std::sync::Mutex<JoinSet<()>>>,
    pub(super) stopping: Stopping,
}

/// Tells an input that stops itself ([`crate::inputs::Input::stops_itself`]),
/// and the outputs ([`crate::outputs::Output::start`]), when the pipeline
/// stops: it was told to (Ctrl-C, SIGTERM), or a failure stopped it. It
/// is not told when its input simply ended: what is in flight is then
/// written with all the patience it takes, unless a stop comes later.
/// An output's also tells when a reload replaces it.
#[derive(Clone)]
pub struct Stopping {
    stop: watch::Receiver<bool>,
    /// An output's: set once a reload retires its stage.
    replaced: Option<watch::Receiver<bool>>,
}

impl Stopping {
    /// The pipeline's, told by `stop`.
    pub(super) fn new(stop: watch::Receiver<bool>) -> Stopping {
        Stopping {
            stop,
            replaced: None,
        }
    }

    /// This one, for the outputs of a stage that `retire` retires.
    pub(crate) fn for_stage(&self, retire: &watch::Sender<bool>) -> Stopping {
        Stopping {
            stop: self.stop.clone(),
            replaced: Some(retire.subscribe()),
        }
    }

    /// A signal of its own and the sender that gives it: for components
    /// driven outside a pipeline (tests).
    #[cfg(test)]
    pub(crate) fn channel() -> (watch::Sender<bool>, Stopping) {
        let (stop, stopping) = watch::channel(false);
        (stop, Stopping::new(stopping))
    }

    /// Resolves once the pipeline stops (at once if it has).
    pub async fn requested(&mut self) {
        // An error means the pipeline is gone: stopped all the same.
        let _ = self.stop.wait_for(|stop| *stop).await;
    }

    /// Whether the pipeline is stopping.
    pub fn is_requested(&self) -> bool {
        *self.stop.borrow() || self.stop.has_changed().is_err()
    }

    /// Resolves once a reload replaces the output given this (its last
    /// batches are written, then the new output takes over); never for
    /// an input, nor once the stage has ended.
    pub async fn replaced(&mut self) {
        let retired = match self.replaced.as_mut() {
            Some(replaced) => replaced.wait_for(|retired| *retired).await.is_ok(),
            None => false,
        };
        if !retired {
            std::future::pending::<()>().await;
        }
    }

    /// Whether a reload replaced the output given this.
    pub fn is_replaced(&self) -> bool {
        self.replaced
            .as_ref()
            .is_some_and(|replaced| *replaced.borrow())
    }

    /// Runs `work` to its end, or gives it up (`None`) once `patience` has
    /// passed since the pipeline began stopping: how a wait that could
    /// last for ever (a broker that is away) lets a stopping pipeline end.
    /// Until the stop, `work` has all the time it takes.
    pub async fn bounded<T>(
        &mut self,
        patience: Duration,
        work: impl Future<Output = T>,
    ) -> Option<T> {
        let given_up = async {
            self.requested().await;
            tokio::time::sleep(patience).await;
        };
        tokio::select! {
            biased;
            done = work => Some(done),
            () = given_up => None,
        }
    }
}

/// The pipeline is stopping: the input should return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

/// A message of a tracked batch ([`Sink::send_tracked`]), and whether
/// its input can deliver it again.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// The message.
    pub message: Message,
    /// A processor failure hands it back to the input
    /// ([`Settled::Retry`]) instead of following `on_error`: it has
    /// deliveries left.
    pub redeliverable: bool,
}

/// What became of one message of a tracked batch, in the batch's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Done with: written, or dropped or dead-lettered by `on_error` (the
    /// output and dead-letter output confirmed what they were given).
    /// The input acknowledges it.
    Done,
    /// A processor failed on it (the error) and it was redeliverable:
    /// nothing of it was written. The input has it delivered again.
    Retry(String),
}

/// What an input hears once the output is done with its batch: for a
/// tracked batch, what became of each message.
pub type TrackedAck = oneshot::Receiver<Result<Vec<Settled>, String>>;

/// One batch from the input, on its way.
pub(super) struct Batch {
    pub(super) seq: u64,
    pub(super) messages: Vec<Message>,
    /// For a tracked batch, whether each message is redeliverable.
    pub(super) redeliverable: Option<Vec<bool>>,
    pub(super) owed: Owed,
}

/// A batch the processors are done with.
pub(super) struct Processed {
    pub(super) seq: u64,
    pub(super) messages: Vec<Message>,
    pub(super) dead: Vec<Message>,
    pub(super) owed: Owed,
}

/// Who waits for a batch's acknowledgement.
pub(super) enum Ack {
    /// Nobody.
    None,
    /// The input, for the whole batch.
    Batch(oneshot::Sender<Result<(), String>>),
    /// The input, for each message: what the processors made of them.
    Tracked(oneshot::Sender<Result<Vec<Settled>, String>>, Vec<Settled>),
}

/// What a batch holds until the output is done with it: its place among
/// the batches in flight, and the acknowledgement its input waits for
/// (if it waits). Settled once written (or failed); dropped unsettled (a
/// worker panicked with it, the pipeline ended before writing it), it
/// still answers its input, with an error, and frees its place.
pub(super) struct Owed {
    pub(super) ack: Ack,
    pub(super) _permit: OwnedSemaphorePermit,
}

impl Owed {
    /// Answers the input with `outcome`; the place in flight is freed
    /// with `self`.
    pub(super) fn settle(mut self, outcome: Result<(), String>) {
        self.answer(outcome);
    }

    /// Answers the input with `outcome`, if it waits and was not
    /// answered yet.
    fn answer(&mut self, outcome: Result<(), String>) {
        match std::mem::replace(&mut self.ack, Ack::None) {
            Ack::None => {}
            Ack::Batch(ack) => {
                let _ = ack.send(outcome);
            }
            Ack::Tracked(ack, settled) => {
                let _ = ack.send(outcome.map(|()| settled));
            }
        }
    }

    /// Records what became of each message of a tracked batch.
    pub(super) fn record(&mut self, outcomes: Vec<Settled>) {
        if let Ack::Tracked(_, settled) = &mut self.ack {
            *settled = outcomes;
        }
    }
}

impl Drop for Owed {
    fn drop(&mut self) {
        // Settled ones (nearly all) have nobody left to answer.
        if !matches!(self.ack, Ack::None) {
            self.answer(Err(NOT_FINISHED.to_string()));
        }
    }
}

impl Sink {
    /// Queues `messages` as one batch, waiting while as many batches as
    /// the pipeline allows are in flight.
    ///
    /// # Errors
    ///
    /// [`Stopped`] when the pipeline no longer takes input.
    pub async fn send(&mut self, messages: Vec<Message>) -> Result<(), Stopped> {
        self.push(messages, None, Ack::None).await
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
        self.push(messages, None, Ack::Batch(ack)).await?;
        Ok(delivered)
    }

    /// Queues `messages` as one batch and answers, once the output is done
    /// with it, what became of each message ([`Settled`], in order): for
    /// inputs that acknowledge each message upstream and can deliver a
    /// failed one again. Each message goes through the processors on its
    /// own, so that a failure is its own; one that a processor split into
    /// several carries its part's index in [`PART_METADATA`](crate::PART_METADATA).
    ///
    /// # Errors
    ///
    /// [`Stopped`] when the pipeline no longer takes input.
    pub async fn send_tracked(&mut self, messages: Vec<Tracked>) -> Result<TrackedAck, Stopped> {
        let (ack, delivered) = oneshot::channel();
        let (messages, redeliverable): (Vec<Message>, Vec<bool>) = messages
            .into_iter()
            .map(|tracked| (tracked.message, tracked.redeliverable))
            .unzip();
        self.push(messages, Some(redeliverable), Ack::Tracked(ack, Vec::new()))
            .await?;
        Ok(delivered)
    }

    /// What tells an input that stops itself that the pipeline stops.
    pub fn stopping(&self) -> Stopping {
        self.stopping.clone()
    }

    /// Runs `settle` (what the input does once a batch is settled:
    /// acknowledging it upstream) as part of the pipeline's run: the run
    /// ends only once every such task has, even when the input itself was
    /// stopped.
    pub fn settle_later(&self, settle: impl Future<Output = ()> + Send + 'static) {
        let mut settlements = self.settlements.lock().unwrap_or_else(|p| p.into_inner());
        // Finished ones are reaped here, so that the set stays as small as
        // the batches in flight.
        while settlements.try_join_next().is_some() {}
        settlements.spawn(settle);
    }

    async fn push(
        &mut self,
        messages: Vec<Message>,
        redeliverable: Option<Vec<bool>>,
        ack: Ack,
    ) -> Result<(), Stopped> {
        // The bound on memory: no batch is queued without a place in
        // flight (the queue never fills before the permits run out).
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Stopped)?;
        let count = messages.len() as u64;
        let batch = Batch {
            seq: self.next,
            messages,
            redeliverable,
            owed: Owed {
                ack,
                _permit: permit,
            },
        };
        self.queue.send(batch).await.map_err(|_| Stopped)?;
        self.next += 1;
        self.counts.add(MessageCount::Received, count);
        Ok(())
    }
}
