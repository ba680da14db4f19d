//! Where a typed function's stdout and stderr go: to the log, line by line,
//! with the function's id, capped per call.
//!
//! Writes never fail, so a chatty guest is never trapped for printing; past
//! [`LOG_CAP_PER_CALL`] bytes in one call the rest is counted, not kept, and
//! a warning says how much was dropped.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Most bytes of one stream logged per call.
pub const LOG_CAP_PER_CALL: usize = 64 * 1024;

/// One output stream of one instance, logged under the function's id.
#[derive(Clone)]
pub(crate) struct GuestLog {
    state: Arc<Mutex<LogState>>,
    /// Whether anything was written since the last `end_call`: most calls
    /// print nothing, and then ending them takes no lock.
    written: Arc<AtomicBool>,
}

struct LogState {
    function: Arc<str>,
    stream: &'static str,
    partial: Vec<u8>,
    logged: usize,
    dropped: usize,
}

impl GuestLog {
    /// A log for `stream` (`stdout` or `stderr`) of `function`.
    pub fn new(function: Arc<str>, stream: &'static str) -> Self {
        let state = LogState {
            function,
            stream,
            partial: Vec::new(),
            logged: 0,
            dropped: 0,
        };
        GuestLog {
            state: Arc::new(Mutex::new(state)),
            written: Arc::new(AtomicBool::new(false)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A panic while logging cannot leave the state inconsistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self, bytes: &[u8]) {
        self.written.store(true, Ordering::Relaxed);
        let mut state = self.lock();
        let room = LOG_CAP_PER_CALL.saturating_sub(state.logged);
        let (kept, dropped) = bytes.split_at(bytes.len().min(room));
        state.logged += kept.len();
        state.dropped += dropped.len();
        state.partial.extend_from_slice(kept);
        while let Some(end) = state.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = state.partial.drain(..=end).collect();
            state.emit(&line[..line.len() - 1]);
        }
    }

    /// Logs what is left of the call's output and resets the cap.
    pub fn end_call(&self) {
        // A plain load first: most calls print nothing, and a swap would
        // write the flag's cache line at every call.
        if !self.written.load(Ordering::Relaxed) || !self.written.swap(false, Ordering::Relaxed) {
            return;
        }
        let mut state = self.lock();
        if !state.partial.is_empty() {
            let rest = std::mem::take(&mut state.partial);
            state.emit(&rest);
        }
        if state.dropped > 0 {
            tracing::warn!(
                target: "wafer::guest",
                function = %state.function,
                stream = state.stream,
                dropped_bytes = state.dropped,
                "Guest output over the log cap of {LOG_CAP_PER_CALL} bytes was dropped."
            );
        }
        state.logged = 0;
        state.dropped = 0;
    }
}

impl LogState {
    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = crate::printable::escape_controls(&text);
        tracing::info!(target: "wafer::guest", function = %self.function, stream = self.stream, "{text}");
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestLog {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        GuestLog::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(LOG_CAP_PER_CALL)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestLog {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        GuestLog::write(&self, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
