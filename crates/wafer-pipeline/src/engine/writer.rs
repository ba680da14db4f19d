//! The output task of a running pipeline: writes finished batches (in
//! input order when `ordered`), sorts out the messages the output
//! rejected, and settles what each batch owes its input.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use wafer::Message;
use wafer::metrics::MessageCount;

use super::sink::Processed;
use super::{Counts, ERROR_METADATA};
use crate::outputs::{Output, Rejected};

/// How errors and logs name the dead-letter output.
pub(super) const DEAD_LETTER: &str = "on_error.output";

/// The output task's parts.
pub(super) struct Writer {
    /// The output, and how errors name it.
    pub(super) output: (String, Box<dyn Output>),
    /// `on_error: {output: ...}`.
    pub(super) dead_letter: Option<Box<dyn Output>>,
    /// `on_error: drop`.
    pub(super) drop_failed: bool,
    /// `pipeline.ordered`.
    pub(super) ordered: bool,
    /// The sequence number of the first batch it will be given.
    pub(super) next: u64,
    pub(super) counts: Arc<Counts>,
    /// Tells the input to stop.
    pub(super) halt: Arc<watch::Sender<bool>>,
}

impl Writer {
    /// Writes each batch (in input order when `ordered`), then
    /// acknowledges it. After a failure it writes nothing more and
    /// answers every later batch with the failure, but keeps taking them
    /// so that nothing upstream blocks; `halt` tells the input to stop.
    ///
    /// It never waits for anything but the output: when `ordered`, the
    /// batch it needs next may be behind those it holds, and the permits
    /// bound how many it holds.
    pub(super) async fn write_all(
        mut self,
        mut finished: mpsc::Receiver<Processed>,
    ) -> Result<(), (String, String)> {
        let mut failure: Option<(String, String)> = None;
        let mut waiting: BTreeMap<u64, Processed> = BTreeMap::new();
        let mut next = self.next;
        while let Some(processed) = finished.recv().await {
            let ready: Vec<Processed> = if self.ordered {
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
                let Processed {
                    messages,
                    dead,
                    owed,
                    ..
                } = batch;
                if let Some((_, message)) = &failure {
                    owed.settle(Err(message.clone()));
                    continue;
                }
                let written = self.write_batch(&messages, &dead).await;
                // The messages go before the place in flight is given back.
                drop((messages, dead));
                match written {
                    Ok(()) => owed.settle(Ok(())),
                    Err((component, message)) => {
                        tracing::error!(output = %component, error = %message, "Output failed; the pipeline stops and acknowledges nothing more.");
                        owed.settle(Err(message.clone()));
                        self.halt.send_replace(true);
                        failure = Some((component, message));
                    }
                }
            }
        }
        // Left only when a batch before them was lost (a worker panicked):
        // never written, out of order; dropping them answers their inputs.
        drop(waiting);
        let (output_name, mut output) = self.output;
        let closed = output.close().await.map_err(|e| (output_name, e));
        match failure {
            Some(failure) => Err(failure),
            None => closed,
        }
    }

    /// Writes a batch's dead letters and its messages; then what the
    /// output rejected follows `on_error`.
    async fn write_batch(
        &mut self,
        messages: &[Message],
        dead: &[Message],
    ) -> Result<(), (String, String)> {
        self.write_dead(dead).await?;
        if messages.is_empty() {
            return Ok(());
        }
        let (output_name, output) = (&self.output.0, &mut self.output.1);
        let rejected = output
            .write(messages)
            .await
            .map_err(|e| (output_name.clone(), e))?;
        let failed = self.sort_rejected(messages, rejected);
        self.counts
            .add(MessageCount::Processed, (messages.len() - failed.0) as u64);
        self.write_dead(&failed.1).await
    }

    /// Counts the messages the output rejected and flags them with their
    /// error: how many, and those the dead-letter output is to have (the
    /// others are dropped: by `on_error: drop`, or, with `continue`, since
    /// nothing can carry them on).
    fn sort_rejected(
        &self,
        messages: &[Message],
        mut rejected: Vec<Rejected>,
    ) -> (usize, Vec<Message>) {
        rejected.sort_by_key(|r| r.index);
        rejected.dedup_by_key(|r| r.index);
        rejected.retain(|r| r.index < messages.len());
        let then = match (&self.dead_letter, self.drop_failed) {
            (Some(_), _) => "it goes to the dead-letter output",
            (None, true) => "it is dropped (on_error: drop)",
            (None, false) => "it is dropped: set on_error to {output: ...} to keep such messages",
        };
        let count = rejected.len();
        let mut dead = Vec::new();
        for Rejected { index, error } in rejected {
            self.counts.add(MessageCount::Failed, 1);
            self.counts.warn_rejected(&error, then);
            if self.dead_letter.is_none() {
                self.counts.add(MessageCount::Dropped, 1);
                continue;
            }
            let mut message = messages[index].clone();
            message
                .metadata
                .insert(ERROR_METADATA.to_string(), error.clone());
            message.error = Some(error);
            dead.push(message);
        }
        (count, dead)
    }

    /// Writes `dead` to the dead-letter output. One it rejects has
    /// nowhere left to go: that fails the batch.
    async fn write_dead(&mut self, dead: &[Message]) -> Result<(), (String, String)> {
        if dead.is_empty() {
            return Ok(());
        }
        let Some(dead_letter) = self.dead_letter.as_mut() else {
            return Ok(());
        };
        let rejected = dead_letter
            .write(dead)
            .await
            .map_err(|e| (DEAD_LETTER.to_string(), e))?;
        if let Some(Rejected { error, .. }) = rejected.first() {
            return Err((
                DEAD_LETTER.to_string(),
                format!("it rejected a failed message, which has nowhere left to go: {error}"),
            ));
        }
        self.counts
            .add(MessageCount::DeadLettered, dead.len() as u64);
        Ok(())
    }
}
