//! The output task of a running pipeline: writes finished batches (in
//! input order when `ordered`) and settles what each owes its input.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use wafer::Message;
use wafer::metrics::MessageCount;

use super::Counts;
use super::sink::Processed;
use crate::outputs::Output;

/// The output task: writes each batch (in input order when `ordered`),
/// then acknowledges it. After a failure it writes nothing more and
/// answers every later batch with the failure, but keeps taking them so
/// that nothing upstream blocks; `halt` tells the input to stop.
///
/// It never waits for anything but the output: when `ordered`, the batch
/// it needs next may be behind those it holds, and the permits bound how
/// many it holds.
pub(super) async fn write_all(
    (output_name, mut output): (String, Box<dyn Output>),
    mut dead_letter: Option<Box<dyn Output>>,
    mut finished: mpsc::Receiver<Processed>,
    ordered: bool,
    counts: Arc<Counts>,
    halt: Arc<watch::Sender<bool>>,
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
            let written = write_batch(
                (&output_name, &mut *output),
                &mut dead_letter,
                &messages,
                &dead,
                &counts,
            )
            .await;
            // The messages go before the place in flight is given back.
            drop((messages, dead));
            match written {
                Ok(()) => owed.settle(Ok(())),
                Err((component, message)) => {
                    tracing::error!(output = %component, error = %message, "Output failed; the pipeline stops and acknowledges nothing more.");
                    owed.settle(Err(message.clone()));
                    halt.send_replace(true);
                    failure = Some((component, message));
                }
            }
        }
    }
    // Left only when a batch before them was lost (a worker panicked):
    // never written, out of order; dropping them answers their inputs.
    drop(waiting);
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
    messages: &[Message],
    dead: &[Message],
    counts: &Counts,
) -> Result<(), (String, String)> {
    if !dead.is_empty()
        && let Some(dead_letter) = dead_letter.as_mut()
    {
        dead_letter
            .write(dead)
            .await
            .map_err(|e| ("on_error.output".to_string(), e))?;
        counts.add(MessageCount::DeadLettered, dead.len() as u64);
    }
    if !messages.is_empty() {
        output
            .write(messages)
            .await
            .map_err(|e| (output_name.to_string(), e))?;
    }
    counts.add(MessageCount::Processed, messages.len() as u64);
    Ok(())
}
