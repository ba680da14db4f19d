//! The resources of one instance's 2023 wasi-http calls, by handle.
//!
//! One counter numbers every kind, from 1: 0 is never a handle (wasi-go
//! answers 0 for a failure, so guests treat it as none).

use std::collections::HashMap;

use bytes::Bytes;
use wasmtime_wasi_http::WasiBody;

/// Header fields, in order, a name as often as it has values.
pub(crate) type Fields = Vec<(String, String)>;

/// A request the guest is building.
pub(crate) struct OutgoingRequest {
    pub method: http::Method,
    pub path: String,
    pub query: String,
    /// `None`: https, as in wasi-go.
    pub scheme: Option<String>,
    pub authority: String,
    pub headers: u32,
    /// The output stream its body is written to, once asked for.
    pub body: Option<u32>,
}

/// How a request failed: the 2023 `error` variant's case and its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCase {
    InvalidUrl = 0,
    Timeout = 1,
    Protocol = 2,
    Unexpected = 3,
}

/// A response, its body not yet read.
pub(crate) struct IncomingResponse {
    pub status: u16,
    pub headers: Fields,
    /// The fields handle of its headers, made when first asked for.
    pub headers_handle: Option<u32>,
    pub body: Option<WasiBody>,
}

/// A stream handle's resource.
pub(crate) enum Stream {
    /// A request body, written whole before the request is sent.
    Output(Vec<u8>),
    /// A response body being read: what is left of the last frame, and
    /// how far the body is.
    Input {
        body: WasiBody,
        pending: Bytes,
        state: BodyState,
    },
}

/// The most bytes of header fields and request bodies one instance may
/// make the host keep, in all: its memory limit does not cover the host.
pub(crate) const MAX_HELD_BYTES: usize = 64 << 20;

/// How far a response body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyState {
    Open,
    Ended,
    /// It failed: every read after the data before the failure is an error.
    Failed,
}

/// Every resource of one instance.
#[derive(Default)]
pub(crate) struct Tables {
    next: u32,
    /// Bytes of fields and bodies copied to the host so far.
    held: usize,
    pub fields: HashMap<u32, Fields>,
    pub requests: HashMap<u32, OutgoingRequest>,
    /// A sent request's outcome: its response's handle, or its error.
    pub futures: HashMap<u32, Result<u32, (ErrorCase, String)>>,
    pub responses: HashMap<u32, IncomingResponse>,
    pub streams: HashMap<u32, Stream>,
}

impl Tables {
    /// A new handle, never 0.
    pub fn handle(&mut self) -> u32 {
        self.next = self.next.checked_add(1).unwrap_or(1);
        self.next
    }

    /// Counts `bytes` more copied to the host; an error past
    /// [`MAX_HELD_BYTES`].
    pub fn hold(&mut self, bytes: usize) -> wasmtime::Result<()> {
        self.held = self.held.saturating_add(bytes);
        if self.held > MAX_HELD_BYTES {
            wasmtime::bail!(
                "the guest made the host keep more than {MAX_HELD_BYTES} bytes of wasi-http fields and bodies"
            );
        }
        Ok(())
    }

    /// Keeps `value` in `table` under a new handle.
    pub fn insert<T>(&mut self, select: fn(&mut Tables) -> &mut HashMap<u32, T>, value: T) -> u32 {
        let handle = self.handle();
        select(self).insert(handle, value);
        handle
    }
}
