//! Reading a function's module bytes: WAT is encoded, binaries are checked
//! against their sha256 pin before anything compiles them.

use std::path::{Component, Path};

use super::{Entry, ModuleSource, Registry};
use crate::error::{Problem, ProblemKind, one_line};
use crate::files::{self, Accept};
use crate::hash::Sha256Hash;

const WASM_MAGIC: &[u8] = b"\0asm";

impl Registry {
    /// The WebAssembly binary of function `entry`: WAT encoded, a file read and
    /// checked against its `hash`.
    ///
    /// # Errors
    ///
    /// A [`Problem`] naming the file, entry and field: an unreadable file, a
    /// hash mismatch, WAT that does not parse, bytes that are not Wasm, or a
    /// module named by URL (see [`crate::sources`]).
    pub fn module_bytes(&self, entry: &Entry) -> Result<Vec<u8>, Problem> {
        let Some(function) = entry.function() else {
            return Err(entry.problem(ProblemKind::Reference, "kind", "not a function"));
        };
        let locate = |kind, field: &str, message: String| entry.problem(kind, field, message);
        // The entry's own bound, so that raising it lets a larger file in.
        let max_bytes = function.limits.compile_limits().max_module_bytes;
        let bytes = match &function.source {
            ModuleSource::WatInline(text) => wat::Parser::new()
                .parse_bytes(Some(Path::new("<inline>")), text.as_bytes())
                .map(|b| b.into_owned())
                .map_err(|e| {
                    locate(
                        ProblemKind::InvalidModule,
                        "source",
                        format!("WAT does not parse: {}", one_line(&e.to_string())),
                    )
                })?,
            ModuleSource::WatFile(path) => {
                let text = files::read(path, max_bytes, Accept::RegularFile)
                    .map_err(|e| locate(e.problem_kind(), "source", e.to_string()))?;
                wat::Parser::new()
                    .parse_bytes(Some(path), &text)
                    .map(|b| b.into_owned())
                    .map_err(|e| {
                        locate(
                            ProblemKind::InvalidModule,
                            "source",
                            format!("WAT does not parse: {}", one_line(&e.to_string())),
                        )
                    })?
            }
            ModuleSource::FsPath { fs, path } => {
                let dir = self
                    .directory(fs)
                    .map_err(|message| locate(ProblemKind::Reference, "fs", message))?;
                let relative = Path::new(path.trim_start_matches('/'));
                if relative
                    .components()
                    .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
                {
                    return Err(locate(
                        ProblemKind::InvalidValue,
                        "path",
                        format!("`{path}` must stay inside {fs}: no `..`"),
                    ));
                }
                let file = dir.directory.join(relative);
                let bytes = files::read(&file, max_bytes, Accept::RegularFile)
                    .map_err(|e| locate(e.problem_kind(), "path", e.to_string()))?;
                if let Some(pinned) = function.hash {
                    let actual = Sha256Hash::of(&bytes);
                    if actual != pinned {
                        return Err(locate(
                            ProblemKind::HashMismatch,
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
                        ProblemKind::InvalidModule,
                        "path",
                        format!("{} is not a WebAssembly binary", file.display()),
                    ));
                }
                bytes
            }
            ModuleSource::Url(url) => {
                return Err(locate(
                    ProblemKind::InvalidValue,
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
