//! What a built pipeline read beyond its config: the module files its
//! components loaded and the registry functions they call. A reload
//! compares them as well as the config, so that a pipeline whose config
//! stayed the same but whose `module_path` file was rebuilt, or whose
//! `call` function changed, is rebuilt too.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wafer::Sha256Hash;
use wafer::files::{Accept, MAX_MODULE_BYTES};

/// The module files and registry functions one part of a pipeline (its
/// input, or its stage) was built from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dependencies {
    /// Each module file loaded, and the hash of the bytes it held then.
    modules: Vec<(PathBuf, Sha256Hash)>,
    /// Each registry function called, by id.
    functions: Vec<String>,
}

impl Dependencies {
    /// What changed since the build, said for a log line, or `None`: a
    /// module file whose bytes differ now (or that cannot be read), or a
    /// function that `kept` (the functions a reload takes over as they
    /// run) does not hold. It reads the files: call it outside async code.
    pub fn changed(&self, kept: impl Fn(&str) -> bool) -> Option<String> {
        for (path, built) in &self.modules {
            match wafer::files::read(path, MAX_MODULE_BYTES, Accept::RegularFile) {
                Ok(bytes) if Sha256Hash::of(&bytes) == *built => {}
                Ok(_) => return Some(format!("module {} changed", path.display())),
                Err(e) => return Some(format!("module {}: {e}", path.display())),
            }
        }
        self.functions
            .iter()
            .find(|id| !kept(id))
            .map(|id| format!("function {id} changed"))
    }
}

/// Where a build records its [`Dependencies`] as its components load
/// what they need.
#[derive(Debug, Default)]
pub(crate) struct Recorder(Mutex<Dependencies>);

impl Recorder {
    /// The module at `path` was loaded from `bytes`.
    pub(crate) fn module(&self, path: &Path, bytes: &[u8]) {
        self.lock()
            .modules
            .push((path.to_path_buf(), Sha256Hash::of(bytes)));
    }

    /// Registry function `id` is called.
    pub(crate) fn function(&self, id: &str) {
        self.lock().functions.push(id.to_string());
    }

    /// What was recorded so far; the recorder starts again empty.
    pub(crate) fn take(&self) -> Dependencies {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Dependencies> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_rewritten_or_gone_and_a_function_not_kept_are_changes() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("m.wasm");
        std::fs::write(&path, b"one").unwrap();
        let recorder = Recorder::default();
        recorder.module(&path, b"one");
        recorder.function("ns:f");
        let built = recorder.take();
        assert_eq!(recorder.take(), Dependencies::default());
        assert_eq!(built.changed(|_| true), None);
        let change = built.changed(|id| id != "ns:f").unwrap();
        assert_eq!(change, "function ns:f changed");
        std::fs::write(&path, b"two").unwrap();
        assert!(built.changed(|_| true).unwrap().contains("changed"));
        std::fs::remove_file(&path).unwrap();
        assert!(built.changed(|_| true).is_some());
    }
}
