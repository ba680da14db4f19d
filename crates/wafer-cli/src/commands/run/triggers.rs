//! What asks `wafer run` to reload: SIGHUP, and with `--watch` a change
//! of a config or module file under the registry folder (or in the folder
//! of the config file named), debounced so that an editor's burst of
//! writes, or a copy of many files, is one reload.
//!
//! Only files a reload reads count ([`WATCHED_EXTENSIONS`]): a pipeline
//! writing its output beside its config must not reload it at every
//! write, nor keep the quiet period from ever ending.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// How long the files must stay quiet before a change is reloaded.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// The longest a change waits for the files to be quiet: files that
/// keep changing are reloaded at least this often.
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(3);

/// The files a change of which reloads: registry and pipeline configs
/// (YAML, JSON, Fluent Bit's `.conf`) and modules.
pub const WATCHED_EXTENSIONS: &[&str] = &["yaml", "yml", "json", "conf", "wasm", "wat"];

/// Why a reload was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// SIGHUP.
    Signal,
    /// A file changed (`--watch`).
    Changed,
}

/// The reload requests of a run.
pub struct Triggers {
    requests: mpsc::Receiver<Cause>,
    /// Where the signal handler and the watcher ask.
    send: mpsc::Sender<Cause>,
    /// Kept for its events; dropping it stops watching.
    watcher: Option<notify::RecommendedWatcher>,
}

impl Triggers {
    /// Listens for SIGHUP (where there is one). The signal handler is
    /// installed before this returns: from then on SIGHUP reloads instead
    /// of ending the process. Call it inside the async runtime.
    ///
    /// # Errors
    ///
    /// When the signal handler cannot be set up.
    pub fn start() -> anyhow::Result<Triggers> {
        let (send, requests) = mpsc::channel(16);
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut hangups = signal(SignalKind::hangup())?;
            let send = send.clone();
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    if send.send(Cause::Signal).await.is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Triggers {
            requests,
            send,
            watcher: None,
        })
    }

    /// Also reloads on changes under `path` (`--watch`).
    ///
    /// # Errors
    ///
    /// When the file watcher cannot be set up.
    pub fn watch(&mut self, path: &Path) -> anyhow::Result<()> {
        self.watcher = Some(watch_files(path, self.send.clone())?);
        Ok(())
    }

    /// The next reload request; file changes count once the files have
    /// been quiet for [`DEBOUNCE`], or [`MAX_DEBOUNCE`] after the first.
    pub async fn next(&mut self) -> Cause {
        let Some(cause) = self.requests.recv().await else {
            return std::future::pending().await;
        };
        if cause == Cause::Signal {
            return cause;
        }
        // Quiet for DEBOUNCE: the point of this wait is the time.
        let latest = tokio::time::Instant::now() + MAX_DEBOUNCE;
        loop {
            let quiet = (tokio::time::Instant::now() + DEBOUNCE).min(latest);
            match tokio::time::timeout_at(quiet, self.requests.recv()).await {
                Ok(Some(Cause::Signal)) => return Cause::Signal,
                Ok(Some(Cause::Changed)) => {}
                Ok(None) | Err(_) => return Cause::Changed,
            }
        }
    }
}

/// Watches the folder `path` names (recursively), or the folder of the
/// file it names.
fn watch_files(
    path: &Path,
    send: mpsc::Sender<Cause>,
) -> anyhow::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|event| changes_files(&event.kind) && reads_any(&event.paths)) {
            // A full queue already holds a change to reload.
            let _ = send.try_send(Cause::Changed);
        }
    })?;
    if path.is_dir() {
        watcher.watch(path, RecursiveMode::Recursive)?;
    } else {
        let folder = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        watcher.watch(folder, RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
}

/// Whether a reload may read one of `paths`: a config or a module file,
/// or a name without an extension (a folder; Kubernetes swaps a mounted
/// ConfigMap's files in at once by renaming its `..data` link). An event
/// naming no path may concern any.
fn reads_any(paths: &[PathBuf]) -> bool {
    paths.is_empty()
        || paths.iter().any(|path| {
            let hidden_link = path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(".."));
            hidden_link
                || path
                    .extension()
                    .and_then(|extension| extension.to_str())
                    .is_none_or(|extension| {
                        WATCHED_EXTENSIONS
                            .iter()
                            .any(|watched| extension.eq_ignore_ascii_case(watched))
                    })
        })
}

/// Whether an event may have changed what a file holds (reading one does
/// not).
fn changes_files(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    match kind {
        // Times and permissions: a read may touch a file's access time.
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_and_modules_count_and_outputs_written_beside_them_do_not() {
        let paths = |names: &[&str]| names.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert!(reads_any(&paths(&["reg/wafer.yaml"])));
        assert!(reads_any(&paths(&["reg/out.txt", "reg/m.WASM"])));
        assert!(reads_any(&paths(&["fluent-bit.conf"])));
        assert!(reads_any(&[]));
        assert!(reads_any(&paths(&["config/..data", "config/..2026_12_03"])));
        assert!(reads_any(&paths(&["reg/modules"])));
        assert!(!reads_any(&paths(&["reg/out.txt"])));
        assert!(!reads_any(&paths(&["reg/.wafer.yaml.swp", "reg/run.log"])));
    }
}
