//! A Dapr-style TinyGo guest's HTTP call, redone in Rust: one request through
//! the 2023 wasi-http core imports (`types`, `streams`,
//! `default-outgoing-HTTP`), making the calls dev-wasm-go's
//! `WasiRoundTripper` makes, in the same order, down to its `User-agent`
//! header and its query passed without the `?`. argv[1] is the method (`GET`
//! or `POST`; the other standard methods go without a body), argv[2] the URL
//! (`http` or `https`). For `POST` all of stdin is the body, sent with
//! `Content-Type: text/plain`. Prints `status <code>` and a newline, then the
//! body as read by one 64 KiB `read` (as the Go client does, so longer bodies
//! are cut), and exits 0. Any failure the host reports (an error from
//! `future-incoming-response-get`, status 0, ...) goes to stderr as
//! `error: <what the host said>` with exit code 1.

use std::alloc::{Layout, alloc, realloc};
use std::io::{Read, Write};
use std::process::exit;

// The import signatures are the lowering wit-bindgen 0.4 produced for the
// wasi-http WIT of March 2023 (commit 53e2d25), the one TinyGo guests link
// against and stealthrocket/wasi-go implements. Handles are plain u32s.
#[link(wasm_import_module = "types")]
unsafe extern "C" {
    #[link_name = "new-fields"]
    fn new_fields(entries: *const StrPair, len: usize) -> u32;
    #[link_name = "fields-entries"]
    fn fields_entries(fields: u32, ret: *mut u8);
    #[link_name = "new-outgoing-request"]
    fn new_outgoing_request(
        method_tag: u32,
        method_other_ptr: *const u8,
        method_other_len: usize,
        path_ptr: *const u8,
        path_len: usize,
        query_ptr: *const u8,
        query_len: usize,
        scheme_is_some: u32,
        scheme_tag: u32,
        scheme_other_ptr: *const u8,
        scheme_other_len: usize,
        authority_ptr: *const u8,
        authority_len: usize,
        headers: u32,
    ) -> u32;
    #[link_name = "outgoing-request-write"]
    fn outgoing_request_write(request: u32, ret: *mut u8);
    #[link_name = "future-incoming-response-get"]
    fn future_incoming_response_get(future: u32, ret: *mut u8);
    #[link_name = "incoming-response-status"]
    fn incoming_response_status(response: u32) -> u32;
    #[link_name = "incoming-response-headers"]
    fn incoming_response_headers(response: u32) -> u32;
    #[link_name = "incoming-response-consume"]
    fn incoming_response_consume(response: u32, ret: *mut u8);
    #[link_name = "drop-outgoing-request"]
    fn drop_outgoing_request(request: u32);
    #[link_name = "drop-incoming-response"]
    fn drop_incoming_response(response: u32);
}

#[link(wasm_import_module = "streams")]
unsafe extern "C" {
    #[link_name = "read"]
    fn stream_read(stream: u32, len: u64, ret: *mut u8);
    #[link_name = "write"]
    fn stream_write(stream: u32, buf: *const u8, len: usize, ret: *mut u8);
    #[link_name = "drop-input-stream"]
    fn drop_input_stream(stream: u32);
}

#[link(wasm_import_module = "default-outgoing-HTTP")]
unsafe extern "C" {
    /// `handle(request, option<request-options>)`: the option's flag, then
    /// each of the three `option<u32>` timeouts as a flag and a value.
    #[link_name = "handle"]
    fn handle(
        request: u32,
        options_is_some: u32,
        connect_timeout_is_some: u32,
        connect_timeout_ms: u32,
        first_byte_timeout_is_some: u32,
        first_byte_timeout_ms: u32,
        between_bytes_timeout_is_some: u32,
        between_bytes_timeout_ms: u32,
    ) -> u32;
}

/// The host hands lists and strings back in memory it allocates through this
/// export (wasi-go calls it as `cabi_realloc(0, 0, 4, size)`); without it
/// `streams.read` and `fields-entries` cannot return anything.
///
/// # Safety
///
/// Called by the host only, with a pointer this function returned before (or
/// null) and the size and alignment it was allocated with.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cabi_realloc(
    old_ptr: *mut u8,
    old_size: usize,
    align: usize,
    new_size: usize,
) -> *mut u8 {
    if new_size == 0 {
        // A zero-sized list needs no memory, only a well-aligned address.
        return align as *mut u8;
    }
    let Ok(layout) = Layout::from_size_align(new_size, align) else {
        std::process::abort();
    };
    let ptr = unsafe {
        if old_size == 0 {
            alloc(layout)
        } else {
            realloc(
                old_ptr,
                Layout::from_size_align_unchecked(old_size, align),
                new_size,
            )
        }
    };
    if ptr.is_null() {
        std::process::abort();
    }
    ptr
}

/// One `tuple<string, string>` as the canonical ABI lays it out in a list.
#[repr(C)]
struct StrPair {
    name_ptr: *const u8,
    name_len: usize,
    value_ptr: *const u8,
    value_len: usize,
}

/// A zeroed return area the host writes a result into. Zeroed so that a host
/// which writes nothing (wasi-go does so for unknown handles) reads back as
/// `none`, `ok` or an empty list rather than stack garbage.
#[repr(C, align(8))]
struct RetArea<const N: usize>([u8; N]);

impl<const N: usize> RetArea<N> {
    fn new() -> Self {
        Self([0; N])
    }

    fn ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }

    fn u8_at(&self, offset: usize) -> u8 {
        self.0[offset]
    }

    fn u32_at(&self, offset: usize) -> u32 {
        u32::from_le_bytes(self.0[offset..offset + 4].try_into().unwrap())
    }
}

/// The `method` variant's cases in order: a case's index is its tag.
/// (`other(string)` is tag 9; the Go client never sends it.)
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// The `error` variant's cases in order, each carrying a string.
const ERROR_CASES: [&str; 4] = [
    "invalid-url",
    "timeout-error",
    "protocol-error",
    "unexpected-error",
];

/// What `WasiRoundTripper` adds when the request has no `User-agent` (that
/// exact spelling), so a server sees what it sees from Dapr's Go guests.
const USER_AGENT: (&str, &str) = ("User-agent", "WASI-HTTP-Go/0.0.1");

/// The one `read` the Go client makes for the whole body.
const BODY_READ_LEN: u64 = 64 * 1024;

/// The parts of a URL the way Go's `net/url` splits them for the client.
struct Url<'a> {
    scheme: &'a str,
    authority: &'a str,
    path: &'a str,
    query: &'a str,
}

impl<'a> Url<'a> {
    fn parse(url: &'a str) -> Result<Self, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("not an absolute URL: {url}"))?;
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        // Go's `URL.Host` leaves out any `user:password@`.
        let authority = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        Ok(Url {
            scheme,
            authority,
            path,
            query,
        })
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, method, url] = args.as_slice() else {
        fail("usage: http_round_trip METHOD URL");
    };
    let body = if method == "POST" {
        let mut body = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut body) {
            fail(&format!("reading stdin: {e}"));
        }
        Some(body)
    } else {
        None
    };
    match round_trip(method, url, body.as_deref()) {
        Ok((status, body)) => {
            let mut out = std::io::stdout().lock();
            let written = writeln!(out, "status {status}")
                .and_then(|()| out.write_all(&body))
                .and_then(|()| out.flush());
            if let Err(e) = written {
                fail(&format!("writing stdout: {e}"));
            }
        }
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    exit(1);
}

/// Sends one request and returns the status and the body's first read.
fn round_trip(method: &str, url: &str, body: Option<&[u8]>) -> Result<(u16, Vec<u8>), String> {
    let method_tag = METHODS
        .iter()
        .position(|m| *m == method)
        .ok_or_else(|| format!("unsupported method: {method}"))? as u32;
    let url = Url::parse(url)?;
    // The Go client only knows these two and never sends `other(string)`.
    let scheme_tag = match url.scheme {
        "http" => 0,
        "https" => 1,
        other => return Err(format!("unsupported scheme: {other}")),
    };

    // `http.Client.Post` sets Content-Type before the round tripper adds its
    // User-agent; the Go client sends one value per name.
    let mut headers = Vec::new();
    if body.is_some() {
        headers.push(("Content-Type", "text/plain"));
    }
    headers.push(USER_AGENT);
    let entries: Vec<StrPair> = headers
        .iter()
        .map(|(name, value)| StrPair {
            name_ptr: name.as_ptr(),
            name_len: name.len(),
            value_ptr: value.as_ptr(),
            value_len: value.len(),
        })
        .collect();
    let fields = unsafe { new_fields(entries.as_ptr(), entries.len()) };

    // The query goes without its `?`, as the Go client passes `URL.RawQuery`.
    let request = unsafe {
        new_outgoing_request(
            method_tag,
            std::ptr::null(),
            0,
            url.path.as_ptr(),
            url.path.len(),
            url.query.as_ptr(),
            url.query.len(),
            1,
            scheme_tag,
            std::ptr::null(),
            0,
            url.authority.as_ptr(),
            url.authority.len(),
            fields,
        )
    };

    if let Some(body) = body {
        // result<outgoing-stream>: tag at 0, the stream at 4.
        let mut ret = RetArea::<8>::new();
        unsafe { outgoing_request_write(request, ret.ptr()) };
        if ret.u8_at(0) != 0 {
            return Err("outgoing-request-write failed".into());
        }
        let stream = ret.u32_at(4);
        // result<u64, stream-error>: tag at 0, the count at 8. One write and
        // the count ignored, as the Go client does: wasi-go writes the count
        // as a u32 at 4, so it cannot be relied on to loop over.
        let mut ret = RetArea::<16>::new();
        unsafe { stream_write(stream, body.as_ptr(), body.len(), ret.ptr()) };
        if ret.u8_at(0) != 0 {
            return Err("streams.write failed".into());
        }
    }

    // The Go client passes `none`, but its C glue always takes the option's
    // address and so sends `some` with every timeout `none`.
    let future = unsafe { handle(request, 1, 0, 0, 0, 0, 0, 0) };

    // option<result<incoming-response, error>>: option tag at 0, result tag
    // at 4; ok: the response at 8; err: the error's tag at 8, its string at
    // 12 (pointer) and 16 (length).
    let mut ret = RetArea::<20>::new();
    unsafe { future_incoming_response_get(future, ret.ptr()) };
    if ret.u8_at(0) == 0 {
        // Not ready yet: the Go client does not poll either, it gives up.
        return Err("future-incoming-response-get: no response".into());
    }
    if ret.u8_at(4) != 0 {
        let case = ERROR_CASES
            .get(ret.u8_at(8) as usize)
            .copied()
            .unwrap_or("unknown-error");
        let message = unsafe { host_bytes(ret.u32_at(12), ret.u32_at(16)) };
        return Err(format!("{case}: {}", String::from_utf8_lossy(message)));
    }
    let response = ret.u32_at(8);

    // wasi-go reports a lost request as a response whose status reads 0.
    let status = unsafe { incoming_response_status(response) } as u16;
    if status == 0 {
        return Err("incoming-response-status: 0 (the host has no response)".into());
    }

    // Read like the Go client does, though only status and body are printed.
    let _headers = unsafe { response_headers(incoming_response_headers(response)) };

    // result<incoming-stream>: tag at 0, the stream at 4.
    let mut ret = RetArea::<8>::new();
    unsafe { incoming_response_consume(response, ret.ptr()) };
    if ret.u8_at(0) != 0 {
        return Err("incoming-response-consume failed".into());
    }
    let stream = ret.u32_at(4);

    // result<tuple<list<u8>, bool>, stream-error>: tag at 0; ok: the list at
    // 4 (pointer) and 8 (length), the end-of-stream flag at 12, which the Go
    // client ignores (and wasi-go writes inverted).
    let mut ret = RetArea::<16>::new();
    unsafe { stream_read(stream, BODY_READ_LEN, ret.ptr()) };
    if ret.u8_at(0) != 0 {
        return Err("streams.read failed".into());
    }
    let body = unsafe { host_bytes(ret.u32_at(4), ret.u32_at(8)) }.to_vec();

    unsafe {
        drop_outgoing_request(request);
        drop_input_stream(stream);
        drop_incoming_response(response);
    }
    Ok((status, body))
}

/// Lifts `fields-entries`: list<tuple<string, string>> at 0 (pointer) and 4
/// (length), 16 bytes an entry.
unsafe fn response_headers(fields: u32) -> Vec<(String, String)> {
    let mut ret = RetArea::<8>::new();
    unsafe { fields_entries(fields, ret.ptr()) };
    let entries = unsafe { host_bytes(ret.u32_at(0), ret.u32_at(4) * 16) };
    entries
        .chunks_exact(16)
        .map(|entry| {
            let word = |i: usize| u32::from_le_bytes(entry[i..i + 4].try_into().unwrap());
            let text = |ptr, len| String::from_utf8_lossy(unsafe { host_bytes(ptr, len) }).into();
            (text(word(0), word(4)), text(word(8), word(12)))
        })
        .collect()
}

/// Bytes the host placed in our memory (through `cabi_realloc`). They are
/// never freed: the program ends right after the one request.
unsafe fn host_bytes<'a>(ptr: u32, len: u32) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    unsafe { std::slice::from_raw_parts(ptr as *const u8, len as usize) }
}
