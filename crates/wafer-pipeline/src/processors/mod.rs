//! What happens to messages on the way. A processor is one file here: a
//! config struct, a `build` step, and a [`Processor::process`] that turns
//! a batch into the next one; plus one line in [`PROCESSORS`].
//!
//! A processor never loses a message: what it fails on is flagged
//! ([`wafer::Message::error`]) and goes on, for the pipeline's `on_error`
//! policy to sort out.

mod call;
mod wasm;
mod wasm_filter;

use crate::config::{ComponentConfig, ComponentError};
use crate::{BoxFuture, BuildContext};

/// A built processor, shared by the pipeline's workers.
pub trait Processor: Send + Sync {
    /// The batch, processed: the messages in order, those it failed on
    /// flagged. A processor may leave some out on purpose (a Fluent Bit
    /// filter dropping a record; the pipeline counts them as filtered),
    /// never one it failed on.
    fn process(&self, batch: Vec<wafer::Message>) -> BoxFuture<'_, Vec<wafer::Message>>;
}

/// How a processor is built from its config.
type Build = fn(&ComponentConfig, &BuildContext<'_>) -> Result<Box<dyn Processor>, ComponentError>;

/// The processors, by the name a config gives them.
const PROCESSORS: &[(&str, Build)] = &[
    ("call", call::build),
    ("wasm", wasm::build),
    ("wasm_filter", wasm_filter::build),
];

/// Builds the processor `config` names.
///
/// # Errors
///
/// An unknown processor (the error lists the supported ones), or a
/// problem with its fields or its module.
pub fn build(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Processor>, ComponentError> {
    crate::lookup(PROCESSORS, "processor", &config.kind)?(config, cx)
}

/// Calls `function` with the batch as one message input; when that fails,
/// each message alone, so that one bad message fails only itself (its
/// neighbours are processed again, on instances of the pool: the failed
/// one was discarded with whatever it had done).
pub(crate) async fn invoke_messages(
    function: &wafer::Function,
    batch: Vec<wafer::Message>,
) -> Vec<wafer::Message> {
    // The call consumes the batch; the fallback needs it as it came.
    let mut kept = batch.clone();
    match function.invoke(wafer::Input::Messages(batch)).await {
        Ok(output) => match output.into_messages() {
            Some(messages) => messages,
            None => unreachable!("a message input answers messages"),
        },
        Err(error) if kept.len() == 1 => {
            kept[0].flag(error.to_string());
            kept
        }
        Err(_) => {
            let mut processed = Vec::new();
            for message in kept {
                processed.extend(Box::pin(invoke_messages(function, vec![message])).await);
            }
            processed
        }
    }
}
