//! `file`: appends to the file at `path` (created if missing), framed by
//! `codec` (a line per message by default). A batch counts as written
//! once the operating system has it.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::{Framing, Output, Rejected};
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
    framing: Framing,
    file: Appender,
}

pub(super) fn build(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Output>, ComponentError> {
    let parsed: FileConfig = config.parse()?;
    Ok(Box::new(File {
        framing: parsed.codec,
        file: Appender::new(cx.resolve(&parsed.path), false),
    }))
}

impl Output for File {
    fn write<'a>(
        &'a mut self,
        batch: &'a [wafer::Message],
    ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
        Box::pin(async move {
            let framed = self.framing.frame(batch);
            self.file.write(&framed).await.map(|()| Vec::new())
        })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.file.sync())
    }
}

/// A file the outputs append to: opened (created if missing) at its first
/// write and kept open; a write returns once the operating system has the
/// bytes.
pub(super) struct Appender {
    path: PathBuf,
    /// Create missing folders of `path` when opening.
    mkdir: bool,
    file: Option<tokio::fs::File>,
    /// The file's length: what it held when opened and what was written.
    len: u64,
    /// A write failed: part of it may be in the file, so `len` is not
    /// known. The file is opened again before the next write; until then
    /// it is kept, so that closing still syncs what went before.
    stale: bool,
}

impl Appender {
    /// The file at `path`, not opened yet; with `mkdir`, its missing
    /// folders are created when it is opened.
    pub(super) fn new(path: PathBuf, mkdir: bool) -> Appender {
        Appender {
            path,
            mkdir,
            file: None,
            len: 0,
            stale: false,
        }
    }

    /// Where the file is.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the file unless it is open; answers its length.
    pub(super) async fn open(&mut self) -> Result<u64, String> {
        if self.file.is_some() && !self.stale {
            return Ok(self.len);
        }
        let cannot = |e: std::io::Error| format!("cannot open {}: {e}", self.path.display());
        let options = || {
            let mut options = tokio::fs::OpenOptions::new();
            options.create(true).append(true);
            options
        };
        let opened = match options().open(&self.path).await {
            Err(e) if self.mkdir && e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(folder) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    tokio::fs::create_dir_all(folder)
                        .await
                        .map_err(|e| format!("cannot create folder {}: {e}", folder.display()))?;
                }
                options().open(&self.path).await
            }
            other => other,
        }
        .map_err(cannot)?;
        self.len = opened.metadata().await.map_err(cannot)?.len();
        self.file = Some(opened);
        self.stale = false;
        Ok(self.len)
    }

    /// Appends `bytes`, opening the file first if needed. After a failure
    /// part of `bytes` may be in the file: the next write opens it again
    /// and reads its length anew.
    pub(super) async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.open().await?;
        let cannot = |e: std::io::Error| format!("cannot write to {}: {e}", self.path.display());
        let file = self.file.as_mut().expect("opened above");
        let written = async {
            file.write_all(bytes).await?;
            file.flush().await
        };
        if let Err(error) = written.await {
            self.stale = true;
            return Err(cannot(error));
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Syncs what was written to the disk, at the end of the run.
    pub(super) async fn sync(&mut self) -> Result<(), String> {
        match self.file.as_mut() {
            Some(file) => file
                .sync_all()
                .await
                .map_err(|e| format!("cannot write to {}: {e}", self.path.display())),
            None => Ok(()),
        }
    }
}
