//! What a WASI program writes to stdout and stderr, kept for its answer and
//! capped: the two streams share `limits.max_output_bytes`.
//!
//! Past the cap, the write that crosses it keeps the bytes that fit and
//! traps the guest with [`OutputLimitReached`]: the program stops at once
//! instead of running on with its output thrown away, and the caller gets
//! the first `max_output_bytes` bytes with the error.
//!
//! A stream can also pass through to the host's own stdout or stderr
//! (`wafer exec`), still counted against the cap.

use std::io::{self, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// Why a write failed: the trap it raises in the guest.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteFailed {
    /// Past `limits.max_output_bytes`.
    #[error(transparent)]
    Limit(#[from] OutputLimitReached),
    /// The host's own stream refused the bytes (pass-through only).
    #[error("cannot write the program's output: {0}")]
    Host(#[source] io::Error),
}

/// The trap raised when a program writes past `limits.max_output_bytes`.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("output limit reached")]
pub(crate) struct OutputLimitReached;

/// Which of the program's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// Where a stream's bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Kept in memory and returned with the answer.
    Capture,
    /// Written to the host's own stdout or stderr as they come.
    PassThrough,
}

/// Both output streams of one call.
#[derive(Clone)]
pub(crate) struct Output {
    mode: OutputMode,
    shared: Arc<Mutex<Captured>>,
}

struct Captured {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    written: u64,
    cap: u64,
    exceeded: bool,
}

/// What a program wrote, and whether it hit the cap.
#[derive(Default)]
pub(crate) struct Written {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exceeded: bool,
}

impl Output {
    /// Empty streams sharing a cap of `cap` bytes.
    pub fn new(cap: u64, mode: OutputMode) -> Self {
        Output {
            mode,
            shared: Arc::new(Mutex::new(Captured {
                stdout: Vec::new(),
                stderr: Vec::new(),
                written: 0,
                cap,
                exceeded: false,
            })),
        }
    }

    /// A WASI stdout or stderr writing into these streams.
    pub fn stream(&self, stream: Stream) -> OutputStreamHandle {
        OutputStreamHandle {
            output: self.clone(),
            stream,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Captured> {
        // Appending bytes cannot leave the buffers inconsistent.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes what was written so far.
    pub fn take(&self) -> Written {
        let mut captured = self.lock();
        Written {
            stdout: std::mem::take(&mut captured.stdout),
            stderr: std::mem::take(&mut captured.stderr),
            exceeded: captured.exceeded,
        }
    }

    /// Writes `bytes` to `stream`; past the cap keeps what fits and fails.
    /// A pass-through write the host's stream refuses fails too: the
    /// program stops, as a native one stops on a closed pipe or a full
    /// disk, instead of running on with its output lost.
    fn write(&self, stream: Stream, bytes: &[u8]) -> Result<(), WriteFailed> {
        let mut captured = self.lock();
        let room = captured.cap.saturating_sub(captured.written);
        let fits = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let kept = &bytes[..fits];
        captured.written += fits as u64;
        match (self.mode, stream) {
            (OutputMode::Capture, Stream::Stdout) => captured.stdout.extend_from_slice(kept),
            (OutputMode::Capture, Stream::Stderr) => captured.stderr.extend_from_slice(kept),
            (OutputMode::PassThrough, Stream::Stdout) => io::stdout()
                .lock()
                .write_all(kept)
                .map_err(WriteFailed::Host)?,
            (OutputMode::PassThrough, Stream::Stderr) => io::stderr()
                .lock()
                .write_all(kept)
                .map_err(WriteFailed::Host)?,
        }
        if fits < bytes.len() {
            captured.exceeded = true;
            return Err(OutputLimitReached.into());
        }
        Ok(())
    }

    fn flush(&self, stream: Stream) -> Result<(), WriteFailed> {
        if self.mode == OutputMode::PassThrough {
            match stream {
                Stream::Stdout => io::stdout().flush(),
                Stream::Stderr => io::stderr().flush(),
            }
            .map_err(WriteFailed::Host)?;
        }
        Ok(())
    }
}

/// One stream of an [`Output`], as WASI sees it.
#[derive(Clone)]
pub(crate) struct OutputStreamHandle {
    output: Output,
    stream: Stream,
}

impl IsTerminal for OutputStreamHandle {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputStreamHandle {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for OutputStreamHandle {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.output
            .write(self.stream, &bytes)
            .map_err(|e| StreamError::Trap(e.into()))
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.output
            .flush(self.stream)
            .map_err(|e| StreamError::Trap(e.into()))
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Offer more than the cap's remainder on purpose: a write that
        // crosses the cap must reach `write` to fail the call.
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutputStreamHandle {
    async fn ready(&mut self) {}
}

impl AsyncWrite for OutputStreamHandle {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(
            self.output
                .write(self.stream, buf)
                .map(|()| buf.len())
                .map_err(io::Error::other),
        )
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.output.flush(self.stream).map_err(io::Error::other))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_shared_and_keeps_the_first_bytes() {
        let output = Output::new(10, OutputMode::Capture);
        assert!(output.write(Stream::Stdout, b"hello").is_ok());
        assert!(output.write(Stream::Stderr, b"abc").is_ok());
        assert!(output.write(Stream::Stdout, b"world").is_err());
        let written = output.take();
        assert_eq!(written.stdout, b"hellowo");
        assert_eq!(written.stderr, b"abc");
        assert!(written.exceeded);
    }
}
