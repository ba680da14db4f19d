//! What a run did, and why one stopped early.

use std::fmt;

/// What a finished run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The pipeline's name.
    pub name: String,
    /// Messages the input produced.
    pub received: u64,
    /// Messages the output confirmed.
    pub processed: u64,
    /// Failed messages dropped: by `on_error: drop`, or, rejected by the
    /// output, without a dead-letter output to take them.
    pub dropped: u64,
    /// Messages a processor flagged with an error, or the output
    /// rejected.
    pub failed: u64,
    /// Flagged messages the dead-letter output confirmed.
    pub dead_lettered: u64,
    /// Messages a processor left out on purpose (a Fluent Bit filter's
    /// dropped records).
    pub filtered: u64,
    /// Failed messages handed back to the input for redelivery.
    pub retried: u64,
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
        if self.filtered > 0 {
            write!(f, ", filtered out {}", self.filtered)?;
        }
        if self.retried > 0 {
            write!(f, ", handed back for redelivery {}", self.retried)?;
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
    /// A processing worker panicked (a bug in wafer): the batch it held
    /// was not written, and an input waiting for its acknowledgement got
    /// an error. The input stopped; the other batches in flight were
    /// processed and written, except, when `ordered`, those after the lost
    /// one (answered with an error too).
    #[error(
        "pipeline {pipeline}: a processing worker panicked ({message}); the messages it held were not written"
    )]
    Worker {
        /// The pipeline.
        pipeline: String,
        /// The panic's message.
        message: String,
        /// What was done before.
        summary: Box<Summary>,
    },
}

impl PipelineError {
    /// What the run did before it failed.
    pub fn summary(&self) -> &Summary {
        match self {
            PipelineError::Input { summary, .. }
            | PipelineError::Output { summary, .. }
            | PipelineError::Worker { summary, .. } => summary,
        }
    }
}
