//! Outbound HTTP for WASI preview 1 core modules that import the 2023
//! preview of wasi-http as core functions: what Dapr's `bindings.wasm`
//! gives TinyGo guests (dev-wasm-go's `WasiRoundTripper`) through
//! stealthrocket/wasi-go's `imports/wasi_http`.
//!
//! Guest contract, as wasi-go lowers it (WIT of WebAssembly/wasi-http at
//! 53e2d25, wit-bindgen 0.4): handles are `i32`, 0 is none; strings and
//! lists are `(ptr, len)`; a `list<tuple<string, string>>` is 16-byte
//! entries `(name ptr, name len, value ptr, value len)`; results that do
//! not fit one value go to a return area the guest passes last, tags one
//! byte. Lists and strings the host returns are allocated through the
//! guest's `cabi_realloc(0, 0, 4, size)` export.
//!
//! | import | signature | |
//! |---|---|---|
//! | `types.new-fields` | `(entries, len) -> fields` | |
//! | `types.fields-entries` | `(fields, ret)` | ret: list ptr @0, len @4 |
//! | `types.new-outgoing-request` | 14 × i32 `-> request` | method tag (9: other), other, path, query, scheme option, tag, other, authority, headers |
//! | `types.outgoing-request-write` | `(request, ret)` | ret: ok @0, stream @4 |
//! | `streams.write` | `(stream, ptr, len, ret)` | ret: ok @0, u64 count @8 |
//! | `default-outgoing-HTTP.handle` | `(request, options?, 3 × (some, ms)) -> future` | sends the request |
//! | `types.future-incoming-response-get` | `(future, ret)` | ret: some @0, err @4, response @8 or error case @8, text ptr @12, len @16 |
//! | `types.incoming-response-status` | `(response) -> status` | |
//! | `types.incoming-response-headers` | `(response) -> fields` | |
//! | `types.incoming-response-consume` | `(response, ret)` | ret: err @0, stream @4 |
//! | `streams.read` | `(stream, i64 len, ret)` | ret: err @0, ptr @4, len @8, end @12 |
//! | `streams.drop-input-stream`, `types.drop-outgoing-request`, `types.drop-incoming-response`, `types.drop-fields` | `(handle)` | |
//!
//! Where wafer does better than wasi-go: the request goes only to a host
//! the function's outbound guard admits, and a denial, like every other
//! failure, is the error case of `future-incoming-response-get` (that ABI
//! has no "denied"), so a guest never sees a status of 0; a query is sent
//! after a `?` (wasi-go drops it); `other` methods work; a read waits for
//! `len` bytes or the end, so a body that arrives in pieces is not cut at
//! the first; `streams.write` reports its count where the WIT puts it; the
//! end flag of `read` means what the WIT says; a bad handle traps the
//! guest instead of ending the host process. Redirects are not followed
//! by the host: a guest's HTTP client follows them with new requests,
//! each admitted again.

mod tables;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime::{Caller, Linker, Memory};
use wasmtime_wasi_http::RequestOptions;

use crate::host::HostState;
use crate::wasi::outbound_http::OutboundClient;
use tables::{BodyState, ErrorCase, IncomingResponse, OutgoingRequest, Stream, Tables};

pub(crate) use tables::Tables as Http2023;

/// The import modules of the 2023 preview.
pub(crate) const MODULES: [&str; 3] = ["types", "streams", DEFAULT_OUTGOING_HTTP];

/// The module whose import makes a guest an HTTP client (as Dapr detects it).
pub(crate) const DEFAULT_OUTGOING_HTTP: &str = "default-outgoing-HTTP";

/// The most one `streams.read` returns: a guest chooses `len`.
const MAX_READ: u64 = 16 << 20;

type Result<T> = wasmtime::Result<T>;

/// Adds the 2023 preview's functions to a preview 1 linker.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
    linker.func_wrap("types", "new-fields", new_fields)?;
    linker.func_wrap_async(
        "types",
        "fields-entries",
        |caller, (fields, ret): (u32, u32)| Box::new(fields_entries(caller, fields, ret)),
    )?;
    linker.func_wrap(
        "types",
        "drop-fields",
        |mut caller: Caller<'_, HostState>, fields: u32| {
            tables(&mut caller).fields.remove(&fields);
        },
    )?;
    linker.func_wrap("types", "new-outgoing-request", new_outgoing_request)?;
    linker.func_wrap("types", "outgoing-request-write", outgoing_request_write)?;
    linker.func_wrap("streams", "write", stream_write)?;
    linker.func_wrap_async(
        DEFAULT_OUTGOING_HTTP,
        "handle",
        |caller,
         (request, options, c, c_ms, f, f_ms, b, b_ms): (
            u32,
            u32,
            u32,
            u32,
            u32,
            u32,
            u32,
            u32,
        )| {
            let timeout = |some: u32, ms: u32| {
                (options != 0 && some != 0).then(|| Duration::from_millis(ms.into()))
            };
            let options = RequestOptions {
                connect_timeout: timeout(c, c_ms),
                first_byte_timeout: timeout(f, f_ms),
                between_bytes_timeout: timeout(b, b_ms),
            };
            Box::new(handle(caller, request, options))
        },
    )?;
    linker.func_wrap_async(
        "types",
        "future-incoming-response-get",
        |caller, (future, ret): (u32, u32)| {
            Box::new(future_incoming_response_get(caller, future, ret))
        },
    )?;
    linker.func_wrap(
        "types",
        "incoming-response-status",
        |mut caller: Caller<'_, HostState>, response: u32| {
            Ok(i32::from(incoming_response(&mut caller, response)?.status))
        },
    )?;
    linker.func_wrap(
        "types",
        "incoming-response-headers",
        incoming_response_headers,
    )?;
    linker.func_wrap(
        "types",
        "incoming-response-consume",
        incoming_response_consume,
    )?;
    linker.func_wrap_async(
        "streams",
        "read",
        |caller, (stream, len, ret): (u32, u64, u32)| Box::new(read(caller, stream, len, ret)),
    )?;
    linker.func_wrap(
        "streams",
        "drop-input-stream",
        |mut caller: Caller<'_, HostState>, stream: u32| {
            tables(&mut caller).streams.remove(&stream);
        },
    )?;
    linker.func_wrap(
        "types",
        "drop-outgoing-request",
        |mut caller: Caller<'_, HostState>, request: u32| {
            tables(&mut caller).requests.remove(&request);
        },
    )?;
    linker.func_wrap(
        "types",
        "drop-incoming-response",
        |mut caller: Caller<'_, HostState>, response: u32| {
            let tables = tables(&mut caller);
            if let Some(response) = tables.responses.remove(&response)
                && let Some(fields) = response.headers_handle
            {
                tables.fields.remove(&fields);
            }
        },
    )?;
    Ok(())
}

fn tables<'a>(caller: &'a mut Caller<'_, HostState>) -> &'a mut Tables {
    caller.data_mut().http_2023()
}

fn new_fields(mut caller: Caller<'_, HostState>, entries: u32, len: u32) -> Result<u32> {
    let fields = read_fields(&mut caller, entries, len)?;
    Ok(tables(&mut caller).insert(|t| &mut t.fields, fields))
}

async fn fields_entries(mut caller: Caller<'_, HostState>, fields: u32, ret: u32) -> Result<()> {
    let Some(fields) = tables(&mut caller).fields.get(&fields).cloned() else {
        wasmtime::bail!("fields-entries: no fields {fields}");
    };
    let list = alloc(&mut caller, &vec![0; fields.len() * 16]).await?;
    let mut entries = Vec::with_capacity(fields.len() * 16);
    for (name, value) in &fields {
        for text in [name, value] {
            let at = alloc(&mut caller, text.as_bytes()).await?;
            entries.extend_from_slice(&at.to_le_bytes());
            entries.extend_from_slice(&(text.len() as u32).to_le_bytes());
        }
    }
    write_memory(&mut caller, list, &entries)?;
    let mut area = list.to_le_bytes().to_vec();
    area.extend_from_slice(&(fields.len() as u32).to_le_bytes());
    write_memory(&mut caller, ret, &area)
}

#[allow(clippy::too_many_arguments)]
fn new_outgoing_request(
    mut caller: Caller<'_, HostState>,
    method: u32,
    method_ptr: u32,
    method_len: u32,
    path_ptr: u32,
    path_len: u32,
    query_ptr: u32,
    query_len: u32,
    has_scheme: u32,
    scheme: u32,
    scheme_ptr: u32,
    scheme_len: u32,
    authority_ptr: u32,
    authority_len: u32,
    headers: u32,
) -> Result<u32> {
    let method = match method {
        0 => http::Method::GET,
        1 => http::Method::HEAD,
        2 => http::Method::POST,
        3 => http::Method::PUT,
        4 => http::Method::DELETE,
        5 => http::Method::CONNECT,
        6 => http::Method::OPTIONS,
        7 => http::Method::TRACE,
        8 => http::Method::PATCH,
        9 => {
            let name = read_string(&mut caller, method_ptr, method_len)?;
            http::Method::from_bytes(name.as_bytes()).map_err(|_| {
                wasmtime::format_err!("new-outgoing-request: `{name}` is not a method")
            })?
        }
        other => wasmtime::bail!("new-outgoing-request: method case {other} does not exist"),
    };
    let scheme = match (has_scheme, scheme) {
        (0, _) => None,
        (_, 0) => Some("http".to_string()),
        (_, 1) => Some("https".to_string()),
        (_, 2) => Some(read_string(&mut caller, scheme_ptr, scheme_len)?),
        (_, other) => wasmtime::bail!("new-outgoing-request: scheme case {other} does not exist"),
    };
    let request = OutgoingRequest {
        method,
        path: read_string(&mut caller, path_ptr, path_len)?,
        query: read_string(&mut caller, query_ptr, query_len)?,
        scheme,
        authority: read_string(&mut caller, authority_ptr, authority_len)?,
        headers,
        body: None,
    };
    Ok(tables(&mut caller).insert(|t| &mut t.requests, request))
}

fn outgoing_request_write(mut caller: Caller<'_, HostState>, request: u32, ret: u32) -> Result<()> {
    let tables = tables(&mut caller);
    if !tables.requests.contains_key(&request) {
        wasmtime::bail!("outgoing-request-write: no request {request}");
    }
    let stream = tables.insert(|t| &mut t.streams, Stream::Output(Vec::new()));
    if let Some(request) = tables.requests.get_mut(&request) {
        request.body = Some(stream);
    }
    write_memory(&mut caller, ret, &[[0; 4], stream.to_le_bytes()].concat())
}

fn stream_write(
    mut caller: Caller<'_, HostState>,
    stream: u32,
    ptr: u32,
    len: u32,
    ret: u32,
) -> Result<()> {
    tables(&mut caller).hold(len as usize)?;
    let bytes = read_bytes(&mut caller, ptr, len)?;
    match tables(&mut caller).streams.get_mut(&stream) {
        Some(Stream::Output(body)) => body.extend_from_slice(&bytes),
        _ => wasmtime::bail!("streams.write: no output stream {stream}"),
    }
    let mut area = [0u8; 16];
    area[8..].copy_from_slice(&u64::from(len).to_le_bytes());
    write_memory(&mut caller, ret, &area)
}

/// Sends the request, if the function may reach its host; the outcome,
/// response or error, waits under a future handle.
async fn handle(
    mut caller: Caller<'_, HostState>,
    request: u32,
    options: RequestOptions,
) -> Result<u32> {
    let Some(request) = tables(&mut caller).requests.remove(&request) else {
        wasmtime::bail!("handle: no request {request}");
    };
    let outcome = match prepare(&mut caller, request) {
        Ok(prepared) => send(caller.data().outbound().client(), prepared, options).await,
        Err(error) => Err(error),
    };
    let tables = tables(&mut caller);
    let outcome = outcome.map(|response| tables.insert(|t| &mut t.responses, response));
    Ok(tables.insert(|t| &mut t.futures, outcome))
}

type Failure = (ErrorCase, String);

/// The request as hyper sends it, once admitted.
fn prepare(
    caller: &mut Caller<'_, HostState>,
    request: OutgoingRequest,
) -> std::result::Result<http::Request<wasmtime_wasi_http::WasiBody>, Failure> {
    let tables = tables(caller);
    let body = request
        .body
        .and_then(|stream| tables.streams.remove(&stream))
        .map_or_else(Vec::new, |stream| match stream {
            Stream::Output(bytes) => bytes,
            Stream::Input { .. } => Vec::new(),
        });
    let fields = tables
        .fields
        .get(&request.headers)
        .cloned()
        .unwrap_or_default();
    let scheme = request.scheme.as_deref().unwrap_or("https");
    let query = match request.query.as_str() {
        "" => String::new(),
        q if q.starts_with('?') => q.to_string(),
        q => format!("?{q}"),
    };
    // Go's client passes the path decoded (`URL.Path`); it goes out
    // encoded, as Go's own client sends it.
    let path = match request.path.as_str() {
        "" => "/".to_string(),
        path => encode_path(path),
    };
    let url = format!("{scheme}://{}{path}{query}", request.authority);
    let uri: http::Uri = url
        .parse()
        .map_err(|e| (ErrorCase::InvalidUrl, format!("{url}: {e}")))?;
    caller
        .data()
        .outbound()
        .admit(&uri)
        .map_err(|denied| (ErrorCase::Unexpected, denied))?;
    let host = uri.authority().map_or("", |a| a.as_str()).to_string();
    let mut builder = http::Request::builder()
        .method(request.method)
        .uri(uri)
        .header(http::header::HOST, host);
    // What wasi:http forbids a guest to set (`Host`, hop-by-hop headers)
    // is dropped, as wasmtime does for preview 2 guests.
    for (name, value) in &fields {
        let forbidden = http::HeaderName::from_bytes(name.as_bytes())
            .is_ok_and(|name| wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(&name));
        if !forbidden {
            builder = builder.header(name.as_str(), value.as_str());
        }
    }
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync();
    builder.body(body).map_err(|e| {
        (
            ErrorCase::Protocol,
            format!("the request to {url} cannot be made: {e}"),
        )
    })
}

async fn send(
    client: OutboundClient,
    request: http::Request<wasmtime_wasi_http::WasiBody>,
    options: RequestOptions,
) -> std::result::Result<IncomingResponse, Failure> {
    use wasmtime_wasi_http::Error as E;
    let response = client.send(request, Some(options)).await.map_err(|e| {
        let case = match e {
            E::DnsTimeout
            | E::ConnectionTimeout
            | E::ConnectionReadTimeout
            | E::HttpResponseTimeout => ErrorCase::Timeout,
            E::HttpRequestUriInvalid | E::DnsError { .. } => ErrorCase::InvalidUrl,
            _ => ErrorCase::Protocol,
        };
        (case, format!("{e:?}"))
    })?;
    let (parts, body) = response.into_parts();
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (canonical_name(name.as_str()), value)
        })
        .collect();
    Ok(IncomingResponse {
        status: parts.status.as_u16(),
        headers,
        headers_handle: None,
        body: Some(body),
    })
}

async fn future_incoming_response_get(
    mut caller: Caller<'_, HostState>,
    future: u32,
    ret: u32,
) -> Result<()> {
    let Some(outcome) = tables(&mut caller).futures.get(&future).cloned() else {
        wasmtime::bail!("future-incoming-response-get: no future {future}");
    };
    let mut area = [0u8; 20];
    area[0] = 1;
    match outcome {
        Ok(response) => area[8..12].copy_from_slice(&response.to_le_bytes()),
        Err((case, message)) => {
            area[4] = 1;
            area[8] = case as u8;
            let text = alloc(&mut caller, message.as_bytes()).await?;
            area[12..16].copy_from_slice(&text.to_le_bytes());
            area[16..20].copy_from_slice(&(message.len() as u32).to_le_bytes());
        }
    }
    write_memory(&mut caller, ret, &area)
}

fn incoming_response<'a>(
    caller: &'a mut Caller<'_, HostState>,
    response: u32,
) -> Result<&'a mut IncomingResponse> {
    match tables(caller).responses.get_mut(&response) {
        Some(found) => Ok(found),
        None => wasmtime::bail!("no incoming-response {response}"),
    }
}

fn incoming_response_headers(mut caller: Caller<'_, HostState>, response: u32) -> Result<u32> {
    let found = incoming_response(&mut caller, response)?;
    if let Some(handle) = found.headers_handle {
        return Ok(handle);
    }
    let headers = found.headers.clone();
    let tables = tables(&mut caller);
    let handle = tables.insert(|t| &mut t.fields, headers);
    if let Some(found) = tables.responses.get_mut(&response) {
        found.headers_handle = Some(handle);
    }
    Ok(handle)
}

fn incoming_response_consume(
    mut caller: Caller<'_, HostState>,
    response: u32,
    ret: u32,
) -> Result<()> {
    let body = incoming_response(&mut caller, response)?.body.take();
    // A body is consumed once; asking again is the error case.
    let area = match body {
        Some(body) => {
            let stream = Stream::Input {
                body,
                pending: Bytes::new(),
                state: BodyState::Open,
            };
            let stream = tables(&mut caller).insert(|t| &mut t.streams, stream);
            [0u32.to_le_bytes(), stream.to_le_bytes()].concat()
        }
        None => [1u32.to_le_bytes(), 0u32.to_le_bytes()].concat(),
    };
    write_memory(&mut caller, ret, &area)
}

/// Up to `len` bytes of a response body: waits for that many or the end.
async fn read(mut caller: Caller<'_, HostState>, stream: u32, len: u64, ret: u32) -> Result<()> {
    let Some(Stream::Input {
        mut body,
        mut pending,
        mut state,
    }) = tables(&mut caller).streams.remove(&stream)
    else {
        wasmtime::bail!("streams.read: no input stream {stream}");
    };
    let want = len.min(MAX_READ) as usize;
    let mut data = Vec::with_capacity(want.min(1 << 16));
    while data.len() < want {
        if pending.is_empty() {
            if state != BodyState::Open {
                break;
            }
            match body.frame().await {
                Some(Ok(frame)) => pending = frame.into_data().unwrap_or_default(),
                Some(Err(e)) => {
                    tracing::debug!("An outbound HTTP response body failed: {e:?}");
                    state = BodyState::Failed;
                }
                None => state = BodyState::Ended,
            }
            continue;
        }
        let take = pending.len().min(want - data.len());
        data.extend_from_slice(&pending.split_to(take));
    }
    let at_end = state == BodyState::Ended && pending.is_empty();
    let failed = state == BodyState::Failed && pending.is_empty() && data.is_empty();
    let input = Stream::Input {
        body,
        pending,
        state,
    };
    tables(&mut caller).streams.insert(stream, input);
    let mut area = [0u8; 16];
    if failed {
        area[0] = 1;
    } else {
        let at = alloc(&mut caller, &data).await?;
        area[4..8].copy_from_slice(&at.to_le_bytes());
        area[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        area[12] = u8::from(at_end);
    }
    write_memory(&mut caller, ret, &area)
}

/// A header name as Go writes it (`content-type` is `Content-Type`):
/// TinyGo guests look names up in a Go map without canonicalising them.
fn canonical_name(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let c = if upper { c.to_ascii_uppercase() } else { c };
            upper = c == '-';
            c
        })
        .collect()
}

/// A decoded path percent-encoded for a URI: what is neither unreserved,
/// a sub-delimiter, `:`, `@` nor `/` is escaped (a `%` and a `?` too).
fn encode_path(path: &str) -> String {
    let mut encoded = String::with_capacity(path.len());
    for byte in path.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                encoded.push(byte as char)
            }
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => {
                encoded.push(byte as char)
            }
            b':' | b'@' | b'/' => encoded.push(byte as char),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

fn memory(caller: &mut Caller<'_, HostState>) -> Result<Memory> {
    match caller.get_export("memory").and_then(|e| e.into_memory()) {
        Some(memory) => Ok(memory),
        None => {
            wasmtime::bail!("the guest exports no `memory`, which wasi-http's 2023 preview needs")
        }
    }
}

fn read_bytes(caller: &mut Caller<'_, HostState>, ptr: u32, len: u32) -> Result<Vec<u8>> {
    let memory = memory(caller)?;
    let range = ptr as usize..(ptr as usize).saturating_add(len as usize);
    match memory.data(&*caller).get(range) {
        Some(bytes) => Ok(bytes.to_vec()),
        None => wasmtime::bail!("{len} bytes at {ptr} are outside the guest's memory"),
    }
}

fn read_string(caller: &mut Caller<'_, HostState>, ptr: u32, len: u32) -> Result<String> {
    String::from_utf8(read_bytes(caller, ptr, len)?)
        .map_err(|_| wasmtime::format_err!("a string at {ptr} is not UTF-8"))
}

/// `len` 16-byte entries of (name, value) strings.
fn read_fields(
    caller: &mut Caller<'_, HostState>,
    entries: u32,
    len: u32,
) -> Result<Vec<(String, String)>> {
    caller.data_mut().http_2023().hold(len as usize * 16)?;
    let raw = read_bytes(caller, entries, len.saturating_mul(16))?;
    let word = |chunk: &[u8], i: usize| {
        u32::from_le_bytes(chunk[i * 4..i * 4 + 4].try_into().expect("4 bytes"))
    };
    raw.chunks_exact(16)
        .map(|entry| {
            caller
                .data_mut()
                .http_2023()
                .hold(word(entry, 1) as usize + word(entry, 3) as usize)?;
            let name = read_string(caller, word(entry, 0), word(entry, 1))?;
            let value = read_string(caller, word(entry, 2), word(entry, 3))?;
            Ok((name, value))
        })
        .collect()
}

fn write_memory(caller: &mut Caller<'_, HostState>, ptr: u32, bytes: &[u8]) -> Result<()> {
    let memory = memory(caller)?;
    memory
        .write(&mut *caller, ptr as usize, bytes)
        .map_err(|_| {
            wasmtime::format_err!(
                "{} bytes at {ptr} are outside the guest's memory",
                bytes.len()
            )
        })
}

/// `bytes` copied into memory the guest allocates with `cabi_realloc`.
async fn alloc(caller: &mut Caller<'_, HostState>, bytes: &[u8]) -> Result<u32> {
    let Some(realloc) = caller
        .get_export("cabi_realloc")
        .and_then(|e| e.into_func())
    else {
        wasmtime::bail!(
            "the guest exports no `cabi_realloc`, which wasi-http's 2023 preview returns lists through"
        );
    };
    let realloc = realloc.typed::<(u32, u32, u32, u32), u32>(&*caller)?;
    let at = realloc
        .call_async(&mut *caller, (0, 0, 4, bytes.len() as u32))
        .await?;
    write_memory(caller, at, bytes)?;
    Ok(at)
}
