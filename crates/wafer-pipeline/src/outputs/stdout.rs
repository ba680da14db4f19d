//! `stdout`: the process's standard output, framed by `codec` (a line per
//! message by default).

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::{Framing, Output};
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
    out: tokio::io::Stdout,
}

pub(super) fn build(
    config: &ComponentConfig,
    _: &BuildContext<'_>,
) -> Result<Box<dyn Output>, ComponentError> {
    let parsed: StdoutConfig = config.parse()?;
    Ok(Box::new(Stdout {
        framing: parsed.codec,
        out: tokio::io::stdout(),
    }))
}

impl Output for Stdout {
    fn write<'a>(&'a mut self, batch: &'a [wafer::Message]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let framed = self.framing.frame(batch);
            self.out
                .write_all(&framed)
                .await
                .and(self.out.flush().await)
                .map_err(|e| format!("cannot write to stdout: {e}"))
        })
    }
}
