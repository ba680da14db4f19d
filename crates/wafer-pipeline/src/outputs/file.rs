//! `file`: appends to the file at `path` (created if missing), framed by
//! `codec` (a line per message by default). A batch counts as written
//! once the operating system has it.

use std::path::PathBuf;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::{Framing, Output};
use crate::config::{ComponentConfig, ComponentError};
use crate::{BoxFuture, BuildContext};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    path: String,
    #[serde(default = "Framing::lines")]
    codec: Framing,
}

struct File {
    path: PathBuf,
    framing: Framing,
    file: Option<tokio::fs::File>,
}

pub(super) fn build(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Output>, ComponentError> {
    let parsed: FileConfig = config.parse()?;
    Ok(Box::new(File {
        path: cx.resolve(&parsed.path),
        framing: parsed.codec,
        file: None,
    }))
}

impl Output for File {
    fn write<'a>(&'a mut self, batch: &'a [wafer::Message]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let cannot =
                |e: std::io::Error| format!("cannot write to {}: {e}", self.path.display());
            if self.file.is_none() {
                let opened = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .await
                    .map_err(|e| format!("cannot open {}: {e}", self.path.display()))?;
                self.file = Some(opened);
            }
            let framed = self.framing.frame(batch);
            let file = self.file.as_mut().expect("opened above");
            file.write_all(&framed).await.map_err(cannot)?;
            file.flush().await.map_err(cannot)
        })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            match self.file.as_mut() {
                Some(file) => file
                    .sync_all()
                    .await
                    .map_err(|e| format!("cannot write to {}: {e}", self.path.display())),
                None => Ok(()),
            }
        })
    }
}
