//! Shared by the wasi:http proxy components (examples/*.rs): building and
//! sending a response, reading an incoming body chunk by chunk and writing
//! an outgoing one in pieces the host accepts, and the small parsers they
//! need. Each example exports `wasi:http/incoming-handler` itself with
//! `wasi::http::proxy::export!`.
//!
//! Resource order: a body's stream is a child of the body and must be
//! dropped first, so [`BodyReader`] and [`BodyWriter`] hold both, the
//! stream declared (hence dropped) first.

use wasi::http::types::{
    ErrorCode, Fields, HeaderError, IncomingBody, Method, OutgoingBody, OutgoingResponse,
    ResponseOutparam, Scheme,
};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

/// The most `blocking-write-and-flush` takes in one call.
pub const MAX_WRITE: usize = 4096;

/// The most asked of one `blocking-read`: it answers with what is there,
/// at least one byte, up to this.
pub const MAX_READ: u64 = 64 * 1024;

/// New headers (or trailers) holding `entries`, in order.
pub fn fields(entries: &[(&str, &[u8])]) -> Result<Fields, HeaderError> {
    let fields = Fields::new();
    for (name, value) in entries {
        fields.append(name, value)?;
    }
    Ok(fields)
}

/// Sends `response` through `out` and opens its body for writing: from
/// here on the status and headers are on their way, only the body is left.
pub fn send(out: ResponseOutparam, response: OutgoingResponse) -> BodyWriter {
    let body = response.body().expect("a response's body is taken once");
    ResponseOutparam::set(out, Ok(response));
    BodyWriter::new(body)
}

/// Answers `status` with a `content-type` header and the whole `body`.
/// Allocates nothing in the guest.
pub fn respond(out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    let headers = Fields::new();
    let _ = headers.append("content-type", content_type.as_bytes());
    let response = OutgoingResponse::new(headers);
    if status != 200 {
        // 200 is a new response's status: no call for it.
        let _ = response.set_status_code(status);
    }
    let writer = send(out, response);
    // A small body in one call: blocking-write-and-flush waits for the
    // stream's check-write budget itself.
    let written = if body.len() <= MAX_WRITE {
        writer.stream.blocking_write_and_flush(body)
    } else {
        writer.write_all(body)
    };
    if written.is_ok() {
        let _ = writer.finish(None);
    }
}

/// An outgoing body (a response's or a request's) and its output stream.
/// Dropped without [`BodyWriter::finish`], the body ends in an error for
/// whoever reads it, not as a short body.
pub struct BodyWriter {
    stream: OutputStream,
    body: OutgoingBody,
}

impl BodyWriter {
    pub fn new(body: OutgoingBody) -> Self {
        let stream = body.write().expect("a body's stream is taken once");
        BodyWriter { stream, body }
    }

    /// Writes all of `bytes`, each piece at most [`MAX_WRITE`] bytes and at
    /// most what `check-write` allows, waiting on the stream when it allows
    /// nothing; each piece with `blocking-write-and-flush`.
    pub fn write_all(&self, mut bytes: &[u8]) -> Result<(), StreamError> {
        while !bytes.is_empty() {
            let permit = self.stream.check_write()?;
            if permit == 0 {
                self.stream.subscribe().block();
                continue;
            }
            let n = bytes.len().min(permit.min(MAX_WRITE as u64) as usize);
            self.stream.blocking_write_and_flush(&bytes[..n])?;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Ends the body, with `trailers` if any.
    pub fn finish(self, trailers: Option<Fields>) -> Result<(), ErrorCode> {
        let BodyWriter { stream, body } = self;
        drop(stream);
        OutgoingBody::finish(body, trailers)
    }
}

/// An incoming body (a request's or a response's) and its input stream.
pub struct BodyReader {
    stream: InputStream,
    _body: IncomingBody,
}

impl BodyReader {
    pub fn new(body: IncomingBody) -> Self {
        let stream = body.stream().expect("a body's stream is taken once");
        BodyReader {
            stream,
            _body: body,
        }
    }

    /// The next chunk as it arrives (blocking until there is one), `None`
    /// at the end of the body.
    pub fn read(&self) -> Result<Option<Vec<u8>>, StreamError> {
        match self.stream.blocking_read(MAX_READ) {
            Ok(chunk) => Ok(Some(chunk)),
            Err(StreamError::Closed) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Streams the rest of this body into `to`, chunk by chunk as it
    /// arrives, never holding more than one chunk: the number of bytes
    /// copied, or the first error of either side.
    pub fn copy_to(&self, to: &BodyWriter) -> Result<u64, StreamError> {
        let mut copied = 0;
        while let Some(chunk) = self.read()? {
            to.write_all(&chunk)?;
            copied += chunk.len() as u64;
        }
        Ok(copied)
    }
}

/// The path of a `path-with-query`: all before any `?`.
pub fn path(path_with_query: &str) -> &str {
    match path_with_query.split_once('?') {
        Some((path, _)) => path,
        None => path_with_query,
    }
}

/// The value of the first query parameter `name` (`""` for a bare `name`),
/// as written: no percent-decoding.
pub fn query_param<'a>(path_with_query: &'a str, name: &str) -> Option<&'a str> {
    let (_, query) = path_with_query.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// A method as it goes on the wire.
pub fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(other) => other,
    }
}

/// The method named `name` (case-sensitive, as HTTP methods are).
pub fn method(name: &str) -> Method {
    match name {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_owned()),
    }
}

/// A scheme as written in a URL.
pub fn scheme_name(scheme: &Scheme) -> &str {
    match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
        Scheme::Other(other) => other,
    }
}
