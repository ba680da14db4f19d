//! `stdout`: the process's standard output, framed by `codec` (a line per
//! message by default).

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::{Framing, Output, Rejected};
use crate::config::{ComponentConfig, ComponentError};
use crate::{BoxFuture, BuildContext};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StdoutConfig {
    #[serde(default = "Framing::lines")]
    codec: Framing,
}

struct Stdout {
    framing: Framing,
    out: StdoutWriter,
}

pub(super) fn build(
    config: &ComponentConfig,
    _: &BuildContext<'_>,
) -> Result<Box<dyn Output>, ComponentError> {
    let parsed: StdoutConfig = config.parse()?;
    Ok(Box::new(Stdout {
        framing: parsed.codec,
        out: StdoutWriter::new(),
    }))
}

impl Output for Stdout {
    fn write<'a>(
        &'a mut self,
        batch: &'a [wafer::Message],
    ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
        Box::pin(async move {
            let framed = self.framing.frame(batch);
            self.out.write(&framed).await.map(|()| Vec::new())
        })
    }
}

/// The process's standard output for the outputs that write there: a
/// buffer is written whole and flushed before the write returns.
pub(super) struct StdoutWriter {
    out: tokio::io::Stdout,
}

impl StdoutWriter {
    /// The process's standard output.
    pub(super) fn new() -> StdoutWriter {
        StdoutWriter {
            out: tokio::io::stdout(),
        }
    }

    /// Writes `bytes` and flushes them.
    pub(super) async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.out
            .write_all(bytes)
            .await
            .and(self.out.flush().await)
            .map_err(|e| format!("cannot write to stdout: {e}"))
    }
}
