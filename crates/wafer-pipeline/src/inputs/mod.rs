//! Where messages come from. An input is one file here: a config struct,
//! a `build` step, and a [`Input::run`] that hands batches to the
//! pipeline's [`Sink`] until it ends; plus one line in [`INPUTS`].

mod dummy;
mod exec_wasi;
mod file;
mod generate;
mod http_server;
mod nats;
mod nats_jetstream;
mod scanner;
mod stdin;
mod stdin_records;

use wafer::Message;

use crate::config::{ComponentConfig, ComponentError};
use crate::{BoxFuture, BuildContext, Sink};

/// A running source of messages.
pub trait Input: Send {
    /// Produces messages into `sink` until the source ends (`Ok`) or
    /// fails; returns early when the sink reports the pipeline stopped.
    fn run(self: Box<Self>, sink: Sink) -> BoxFuture<'static, Result<(), String>>;

    /// Whether it returns promptly once [`Sink::stopping`] says so, after
    /// handing back upstream what it took and did not send: the pipeline
    /// then waits for it. Otherwise (the default) the pipeline drops it
    /// where it stands when it stops.
    fn stops_itself(&self) -> bool {
        false
    }

    /// Where a new run of this input goes on from, when it goes on from
    /// where a stopped one stood: a position kept outside the process (a
    /// stream's durable consumer), or a source without one (a subject). A
    /// reload may replace the input of a running pipeline with one of the
    /// same position. `None` (the default): a new run would read again
    /// what this one read (a file, `generate`'s count) or miss what it
    /// held (stdin's buffered lines), and a reload refuses to replace it.
    fn position(&self) -> Option<String> {
        None
    }
}

/// How an input is built from its config.
type Build = fn(&ComponentConfig, &BuildContext<'_>) -> Result<Box<dyn Input>, ComponentError>;

/// The inputs, by the name a config gives them.
const INPUTS: &[(&str, Build)] = &[
    ("dummy", dummy::build),
    ("exec_wasi", exec_wasi::build),
    ("file", file::build),
    ("generate", generate::build),
    ("http_server", http_server::build),
    ("nats", nats::build),
    ("nats_jetstream", nats_jetstream::build),
    ("stdin", stdin::build),
    ("stdin_records", stdin_records::build),
];

/// The most messages an input puts in one batch.
pub const MAX_BATCH: usize = 512;

/// Builds the input `config` names.
///
/// # Errors
///
/// An unknown input (the error lists the supported ones), or a problem
/// with its fields.
pub fn build(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Input>, ComponentError> {
    crate::lookup(INPUTS, "input", &config.kind)?(config, cx)
}

/// Hands `records` to `sink` in batches of [`MAX_BATCH`] at most; `false`
/// when the pipeline stopped.
pub(crate) async fn send_batched(
    sink: &mut Sink,
    records: impl IntoIterator<Item = Message>,
) -> bool {
    let mut records = records.into_iter().peekable();
    while records.peek().is_some() {
        let batch: Vec<Message> = records.by_ref().take(MAX_BATCH).collect();
        if sink.send(batch).await.is_err() {
            return false;
        }
    }
    true
}
