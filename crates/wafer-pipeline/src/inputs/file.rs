//! `file`: the files `paths` names (globs allowed), one after another, a
//! message per line or a message per file; each message carries its file
//! in metadata `path`. `scanner`, `codec` and `max_buffer` as
//! [`super::scanner`] reads them.

use std::path::PathBuf;

use serde::Deserialize;
use tokio::io::BufReader;
use wafer::Message;

use super::Input;
use super::scanner::{Scanner, choose, scan};
use crate::config::{ComponentConfig, ComponentError};
use crate::{BoxFuture, BuildContext, Sink};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    paths: Vec<String>,
    scanner: Option<serde_json::Value>,
    codec: Option<String>,
    max_buffer: Option<usize>,
}

struct Files {
    files: Vec<PathBuf>,
    scanner: Scanner,
}

pub(super) fn build(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Input>, ComponentError> {
    let parsed: FileConfig = config.parse()?;
    let scanner = choose(
        parsed.scanner.as_ref(),
        parsed.codec.as_deref(),
        parsed.max_buffer,
    )?;
    let mut files = Vec::new();
    for (i, pattern) in parsed.paths.iter().enumerate() {
        let field = format!("paths[{i}]");
        let pattern = cx.resolve(pattern).to_string_lossy().into_owned();
        let matches = glob::glob(&pattern)
            .map_err(|e| ComponentError::invalid(&field, format!("not a valid glob: {e}")))?;
        let before = files.len();
        for found in matches {
            let path =
                found.map_err(|e| ComponentError::invalid(&field, format!("cannot read {e}")))?;
            if path.is_file() {
                files.push(path);
            }
        }
        if files.len() == before {
            return Err(ComponentError::invalid(
                &field,
                format!("`{pattern}` matches no file"),
            ));
        }
    }
    Ok(Box::new(Files { files, scanner }))
}

impl Input for Files {
    fn run(self: Box<Self>, mut sink: Sink) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            for path in self.files {
                let file = tokio::fs::File::open(&path)
                    .await
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
                let name = path.display().to_string();
                let make = |bytes: Vec<u8>| Message::new(bytes).with_meta("path", name.clone());
                let reader = BufReader::with_capacity(64 << 10, file);
                match scan(reader, &self.scanner, &mut sink, make).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_stopped)) => return Ok(()),
                    Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
                }
            }
            Ok(())
        })
    }
}
