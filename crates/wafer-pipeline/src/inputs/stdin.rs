//! `stdin`: the process's standard input, a message per line (or the
//! whole input as one message: `scanner: {to_the_end: {}}`); `scanner`,
//! `codec` and `max_buffer` as [`super::scanner`] reads them.

use serde::Deserialize;
use tokio::io::BufReader;
use wafer::Message;

use super::Input;
use super::scanner::{Scanner, choose, scan};
use crate::config::{ComponentConfig, ComponentError};
use crate::{BoxFuture, BuildContext, Sink};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StdinConfig {
    scanner: Option<serde_json::Value>,
    codec: Option<String>,
    max_buffer: Option<usize>,
}

struct Stdin {
    scanner: Scanner,
}

pub(super) fn build(
    config: &ComponentConfig,
    _: &BuildContext<'_>,
) -> Result<Box<dyn Input>, ComponentError> {
    let parsed: StdinConfig = config.parse()?;
    Ok(Box::new(Stdin {
        scanner: choose(
            parsed.scanner.as_ref(),
            parsed.codec.as_deref(),
            parsed.max_buffer,
        )?,
    }))
}

impl Input for Stdin {
    fn run(self: Box<Self>, mut sink: Sink) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            let reader = BufReader::with_capacity(64 << 10, tokio::io::stdin());
            match scan(reader, &self.scanner, &mut sink, Message::new).await {
                Ok(_) => Ok(()),
                Err(e) => Err(format!("cannot read stdin: {e}")),
            }
        })
    }
}
