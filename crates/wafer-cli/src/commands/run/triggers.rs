//! What asks `wafer run` to reload: SIGHUP, and with `--watch` a change
//! of any file under the registry folder (or in the folder of the config
//! file named), debounced so that an editor's burst of writes, or a copy
//! of many files, is one reload.

use std::path::Path;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// How long the files must stay quiet before a change is reloaded.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

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
    /// Kept for its events; dropping it stops watching.
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Triggers {
    /// Listens for SIGHUP (where there is one) and, when `watch`, for
    /// changes under `path`. The signal handler is installed before this
    /// returns: from then on SIGHUP reloads instead of ending the process.
    ///
    /// # Errors
    ///
    /// When the signal handler or the file watcher cannot be set up.
    pub fn start(path: &Path, watch: bool) -> anyhow::Result<Triggers> {
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
        let watcher = watch.then(|| watch_files(path, send)).transpose()?;
        Ok(Triggers {
            requests,
            _watcher: watcher,
        })
    }

    /// The next reload request; file changes count once the files have
    /// been quiet for [`DEBOUNCE`].
    pub async fn next(&mut self) -> Cause {
        let Some(cause) = self.requests.recv().await else {
            return std::future::pending().await;
        };
        if cause == Cause::Signal {
            return cause;
        }
        // Quiet for DEBOUNCE: the point of this wait is the time.
        loop {
            match tokio::time::timeout(DEBOUNCE, self.requests.recv()).await {
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
        if event.is_ok_and(|event| changes_files(&event.kind)) {
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
