//! Reading a function's module bytes: WAT is encoded, binaries are checked
//! against their sha256 pin before anything compiles them.

use std::path::{Component, Path};

use super::{EntryKind, ModuleSource, Registry};
use crate::error::{Problem, one_line};
use crate::hash::Sha256Hash;

const WASM_MAGIC: &[u8] = b"\0asm";

impl Registry {
    /// The WebAssembly binary of function `id`: WAT encoded, a file read and
    /// checked against its `hash`.
    ///
    /// # Errors
    ///
    /// A [`Problem`] naming the file, entry and field: an unreadable file, a
    /// hash mismatch, WAT that does not parse, bytes that are not Wasm, or a
    /// module named by URL (see [`crate::sources`]).
    pub fn module_bytes(&self, id: &str) -> Result<Vec<u8>, Problem> {
        let entry = self
            .get(id)
            .ok_or_else(|| Problem::new("no such entry").in_entry(id))?;
        let EntryKind::Function(function) = &entry.kind else {
            return Err(Problem::new("not a function")
                .in_file(&entry.file)
                .in_entry(id));
        };
        let locate = |field: &str, message: String| entry.problem(field, message);
        let bytes = match &function.source {
            ModuleSource::WatInline(text) => wat::Parser::new()
                .parse_bytes(Some(Path::new("<inline>")), text.as_bytes())
                .map(|b| b.into_owned())
                .map_err(|e| {
                    locate(
                        "source",
                        format!("WAT does not parse: {}", one_line(&e.to_string())),
                    )
                })?,
            ModuleSource::WatFile(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    locate("source", format!("cannot read {}: {e}", path.display()))
                })?;
                wat::Parser::new()
                    .parse_bytes(Some(path), text.as_bytes())
                    .map(|b| b.into_owned())
                    .map_err(|e| {
                        locate(
                            "source",
                            format!("WAT does not parse: {}", one_line(&e.to_string())),
                        )
                    })?
            }
            ModuleSource::FsPath { fs, path } => {
                let Some(EntryKind::Directory(dir)) = self.get(fs).map(|e| &e.kind) else {
                    return Err(locate(
                        "fs",
                        format!("refers to {fs}, which is not an fs.directory"),
                    ));
                };
                let relative = Path::new(path.trim_start_matches('/'));
                if relative
                    .components()
                    .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
                {
                    return Err(locate(
                        "path",
                        format!("`{path}` must stay inside {fs}: no `..`"),
                    ));
                }
                let file = dir.directory.join(relative);
                let bytes = std::fs::read(&file)
                    .map_err(|e| locate("path", format!("cannot read {}: {e}", file.display())))?;
                if let Some(pinned) = function.hash {
                    let actual = Sha256Hash::of(&bytes);
                    if actual != pinned {
                        return Err(locate(
                            "hash",
                            format!(
                                "sha256 mismatch: {} has {actual}, the entry pins {pinned}",
                                file.display()
                            ),
                        ));
                    }
                }
                if !bytes.starts_with(WASM_MAGIC) {
                    return Err(locate(
                        "path",
                        format!("{} is not a WebAssembly binary", file.display()),
                    ));
                }
                bytes
            }
            ModuleSource::Url(url) => {
                return Err(locate(
                    "url",
                    format!(
                        "{url} is fetched by the runtime (wafer::sources), not read from the registry"
                    ),
                ));
            }
        };
        Ok(bytes)
    }
}
