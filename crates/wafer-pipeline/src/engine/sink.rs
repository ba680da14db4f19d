//! The input's side of a running pipeline: [`Sink`] queues batches, and
//! each batch holds its place among those in flight until the output is
//! done with it ([`Owed`]).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use wafer::Message;
use wafer::metrics::MessageCount;

use super::{Counts, NOT_FINISHED};

/// The input side of the queue: what an input hands its messages to.
pub struct Sink {
    pub(super) queue: mpsc::Sender<Batch>,
    pub(super) permits: Arc<Semaphore>,
    pub(super) next: u64,
    pub(super) counts: Arc<Counts>,
}

/// The pipeline is stopping: the input should return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

/// One batch from the input, on its way.
pub(super) struct Batch {
    pub(super) seq: u64,
    pub(super) messages: Vec<Message>,
    pub(super) owed: Owed,
}

/// A batch the processors are done with.
pub(super) struct Processed {
    pub(super) seq: u64,
    pub(super) messages: Vec<Message>,
    pub(super) dead: Vec<Message>,
    pub(super) owed: Owed,
}

/// What a batch holds until the output is done with it: its place among
/// the batches in flight, and the acknowledgement its input waits for
/// (if it waits). Settled once written (or failed); dropped unsettled (a
/// worker panicked with it, the pipeline ended before writing it), it
/// still answers its input, with an error, and frees its place.
pub(super) struct Owed {
    pub(super) ack: Option<oneshot::Sender<Result<(), String>>>,
    pub(super) _permit: OwnedSemaphorePermit,
}

impl Owed {
    /// Answers the input with `outcome`; the place in flight is freed
    /// with `self`.
    pub(super) fn settle(mut self, outcome: Result<(), String>) {
        if let Some(ack) = self.ack.take() {
            let _ = ack.send(outcome);
        }
    }
}

impl Drop for Owed {
    fn drop(&mut self) {
        if let Some(ack) = self.ack.take() {
            let _ = ack.send(Err(NOT_FINISHED.to_string()));
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
