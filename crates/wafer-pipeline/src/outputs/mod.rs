//! Where messages go. An output is one file here: a config struct, a
//! `build` step, and [`Output::write`], which returns once the batch is
//! written (the pipeline then acknowledges it); plus one line in
//! [`OUTPUTS`]. An output that connects somewhere does so in
//! [`Output::start`], as the run starts.

mod broker;
mod drop;
mod file;
mod fluentbit_file;
mod fluentbit_http;
mod fluentbit_retry;
mod fluentbit_stdout;
mod http_client;
mod nats;
mod nats_jetstream;
mod stdout;

use serde::Deserialize;

use crate::config::{ComponentConfig, ComponentError};
use crate::{BoxFuture, BuildContext, Stopping};

/// A built output, driven by the pipeline's one output task.
pub trait Output: Send {
    /// Gets ready to write, once, as the run starts and before its input
    /// does: an output that connects somewhere connects here, so that a
    /// wrong address or wrong credentials fail the run at its start
    /// rather than at its first message. `stopping` says when the
    /// pipeline stops; a wait that could last for ever (publishing again
    /// while a broker is away) must then end in a bounded time
    /// ([`Stopping::bounded`]) and fail its batch, which is then not
    /// acknowledged. It also says when a reload replaces the output
    /// ([`Stopping::replaced`]): the batches it holds are still given to
    /// it, then the new output takes over, so a wait for a retry should
    /// end (Fluent Bit's outputs then drop what fails). By default there
    /// is nothing to do.
    ///
    /// # Errors
    ///
    /// Why it cannot write at all: the run fails before its input starts.
    fn start(&mut self, stopping: Stopping) -> BoxFuture<'_, Result<(), String>> {
        let _ = stopping;
        Box::pin(async { Ok(()) })
    }

    /// Writes `batch`: `Ok` once every message of it is written, except
    /// those it rejects. A message the output can never write as it is (a
    /// subject its metadata makes invalid, a payload over the broker's
    /// limit) is rejected, by its index in the batch and with why: that
    /// is the message's own failure, which the pipeline's `on_error`
    /// takes care of, and the rest of the batch counts as written.
    ///
    /// # Errors
    ///
    /// A failure of the whole batch (the destination is unreachable after
    /// the output's own retries): nothing of it is acknowledged, and the
    /// pipeline stops.
    fn write<'a>(
        &'a mut self,
        batch: &'a [wafer::Message],
    ) -> BoxFuture<'a, Result<Vec<Rejected>, String>>;

    /// Flushes what is buffered, at the end of the run.
    fn close(&mut self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

/// A message of a batch that an output rejected ([`Output::write`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Its index in the batch.
    pub index: usize,
    /// Why the output cannot write it.
    pub error: String,
}

impl Rejected {
    /// Every message of a batch of `count`, for the same `error`.
    pub(crate) fn all(count: usize, error: &str) -> Vec<Rejected> {
        (0..count)
            .map(|index| Rejected {
                index,
                error: error.to_string(),
            })
            .collect()
    }
}

/// How an output is built from its config.
type Build = fn(&ComponentConfig, &BuildContext<'_>) -> Result<Box<dyn Output>, ComponentError>;

/// The outputs, by the name a config gives them.
const OUTPUTS: &[(&str, Build)] = &[
    ("broker", broker::build),
    ("drop", drop::build),
    ("file", file::build),
    ("fluentbit_file", fluentbit_file::build),
    ("fluentbit_http", fluentbit_http::build),
    ("fluentbit_stdout", fluentbit_stdout::build),
    ("http_client", http_client::build),
    ("nats", nats::build),
    ("nats_jetstream", nats_jetstream::build),
    ("stdout", stdout::build),
];

/// Builds the output `config` names.
///
/// # Errors
///
/// An unknown output (the error lists the supported ones), or a problem
/// with its fields.
pub fn build(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Output>, ComponentError> {
    let build = crate::lookup(OUTPUTS, "output", &config.kind)?;
    if RETRIED.contains(&config.kind.as_str()) {
        fluentbit_retry::retried(config, cx, build)
    } else {
        build(config, cx)
    }
}

/// The outputs that retry a batch they could not write as Fluent Bit's
/// engine does, given `retry_limit` or a scheduler field
/// ([`fluentbit_retry`]).
pub(crate) const RETRIED: &[&str] = &["fluentbit_file", "fluentbit_http"];

/// How messages are framed in a byte stream (`codec`): `lines` (each
/// followed by a newline, the default), `all-bytes` (as they are), or
/// `delim:X` (each followed by X).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct Framing {
    delimiter: Vec<u8>,
}

impl TryFrom<String> for Framing {
    type Error = String;

    fn try_from(codec: String) -> Result<Self, String> {
        let delimiter = match codec.as_str() {
            "lines" => b"\n".to_vec(),
            "all-bytes" => Vec::new(),
            other => match other.strip_prefix("delim:") {
                Some(delimiter) => delimiter.as_bytes().to_vec(),
                None => {
                    return Err(format!(
                        "wafer writes `lines`, `all-bytes` or `delim:X`, not `{other}`"
                    ));
                }
            },
        };
        Ok(Framing { delimiter })
    }
}

impl Framing {
    /// Lines: Benthos' default.
    pub fn lines() -> Framing {
        Framing {
            delimiter: b"\n".to_vec(),
        }
    }

    /// The batch framed into one buffer, written at once.
    pub fn frame(&self, batch: &[wafer::Message]) -> Vec<u8> {
        let size = batch
            .iter()
            .map(|m| m.bytes.len() + self.delimiter.len())
            .sum();
        let mut buffer = Vec::with_capacity(size);
        for message in batch {
            buffer.extend_from_slice(&message.bytes);
            buffer.extend_from_slice(&self.delimiter);
        }
        buffer
    }
}
