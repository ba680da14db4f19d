//! Getting a module's bytes from an `http://`, `https://` or `file://` URL,
//! within a time and size limit, and refusing anything that is not Wasm.

use std::io;
use std::path::Path;
use std::time::Duration;

use super::error::{SourceError, error_chain};
use crate::files::{self, Accept, ReadError};

/// How long a download may take, connection included, unless configured.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest module accepted unless configured: 256 MiB, far above any
/// real module, but small enough that a runaway response cannot exhaust
/// memory.
pub const DEFAULT_MAX_MODULE_BYTES: u64 = 256 * 1024 * 1024;

/// How long a module from an unpinned URL is used from the cache before
/// wafer asks its server again (with `If-None-Match` / `If-Modified-Since`):
/// 5 minutes. A pinned URL's module never changes, so it is never asked
/// for again.
pub const DEFAULT_URL_FRESHNESS: Duration = Duration::from_secs(300);

/// Every WebAssembly binary, core module or component, starts with this.
const WASM_MAGIC: &[u8] = b"\0asm";

const USER_AGENT: &str = concat!("wafer/", env!("CARGO_PKG_VERSION"));

/// Limits that apply to every module read from a URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchLimits {
    /// The whole download (connect, headers and body) must finish within
    /// this time. Does not apply to `file://` URLs.
    pub timeout: Duration,
    /// Content longer than this is refused, whatever the scheme; the excess
    /// is never read into memory.
    pub max_bytes: u64,
    /// How long a module fetched from an unpinned URL is used from the
    /// cache before the server is asked again whether it changed.
    pub freshness: Duration,
}

impl Default for FetchLimits {
    /// [`DEFAULT_FETCH_TIMEOUT`], [`DEFAULT_MAX_MODULE_BYTES`] and
    /// [`DEFAULT_URL_FRESHNESS`].
    fn default() -> Self {
        FetchLimits {
            timeout: DEFAULT_FETCH_TIMEOUT,
            max_bytes: DEFAULT_MAX_MODULE_BYTES,
            freshness: DEFAULT_URL_FRESHNESS,
        }
    }
}

/// Where a URL points, decided by its scheme alone.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Location<'a> {
    /// `http://` or `https://`: downloaded, and worth caching.
    Remote,
    /// `file://`: the path after the scheme, exactly as written.
    Local(&'a Path),
}

/// Sorts `url` by scheme (case-insensitively); anything else is refused.
pub(super) fn locate(url: &str) -> Result<Location<'_>, SourceError> {
    let has_scheme = |scheme: &str| {
        url.get(..scheme.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme))
    };
    if has_scheme("http://") || has_scheme("https://") {
        return Ok(Location::Remote);
    }
    if has_scheme("file://") {
        // Dapr's rule, kept so Dapr component files mean the same here:
        // `file://x.wasm` is relative to the working directory, and only
        // `file:///x.wasm` is absolute. No host part, no percent-decoding.
        let path = &url["file://".len()..];
        if path.is_empty() {
            return Err(bad_url(url, "there is no path after file://"));
        }
        return Ok(Location::Local(Path::new(path)));
    }
    Err(bad_url(
        url,
        "only http://, https:// and file:// URLs are supported",
    ))
}

/// What a server said identifies the version it sent (HTTP's validators),
/// to ask later whether it changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Validators {
    /// The `ETag` header.
    pub etag: Option<String>,
    /// The `Last-Modified` header.
    pub last_modified: Option<String>,
}

/// What a download brought.
#[derive(Debug)]
pub(super) enum Fetched {
    /// A module, checked to be Wasm, with its validators.
    Body(Vec<u8>, Validators),
    /// The server said the version the validators name is still current
    /// (`304 Not Modified`).
    NotModified,
}

/// Downloads `url` (http or https) and checks that it is Wasm; with
/// `known` validators, asks the server only for a version other than
/// theirs.
///
/// The blocking client runs on a thread of its own: reqwest's blocking API
/// panics when it is used, or even dropped, on a Tokio runtime thread, and
/// wafer loads registries from inside its server.
pub(super) fn download(
    url: &str,
    limits: FetchLimits,
    known: Option<&Validators>,
) -> Result<Fetched, SourceError> {
    let owned_url = url.to_owned();
    let known = known.cloned();
    let (done, outcome) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("wafer-fetch".to_owned())
        .spawn(move || {
            let _ = done.send(download_here(&owned_url, limits, known.as_ref()));
        })
        .map_err(|error| transfer(url, format!("cannot start a download thread: {error}")))?;
    // reqwest's timeout bounds each read, not the whole body: a server that
    // trickles a byte now and then would never be stopped. The whole
    // download gets `limits.timeout`; a worker still reading after that is
    // left to finish on its own and its result dropped.
    match outcome.recv_timeout(limits.timeout) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(timeout(url, limits)),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err(transfer(url, "the HTTP client panicked".to_owned()))
        }
    }
}

fn download_here(
    url: &str,
    limits: FetchLimits,
    known: Option<&Validators>,
) -> Result<Fetched, SourceError> {
    let client = reqwest::blocking::Client::builder()
        .timeout(limits.timeout)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|error| transfer(url, reqwest_reason(&error)))?;
    let mut request = client.get(url);
    if let Some(known) = known {
        if let Some(etag) = &known.etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if let Some(date) = &known.last_modified {
            request = request.header(reqwest::header::IF_MODIFIED_SINCE, date);
        }
    }
    let mut response = request
        .send()
        .map_err(|error| request_error(url, limits, &error))?;

    let status = response.status();
    if status == reqwest::StatusCode::NOT_MODIFIED && known.is_some() {
        return Ok(Fetched::NotModified);
    }
    if !status.is_success() {
        return Err(SourceError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    // Refuse early when the server says up front that the body is too big.
    if response
        .content_length()
        .is_some_and(|length| length > limits.max_bytes)
    {
        return Err(too_large(url, limits));
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header(reqwest::header::CONTENT_TYPE);
    let validators = Validators {
        etag: header(reqwest::header::ETAG),
        last_modified: header(reqwest::header::LAST_MODIFIED),
    };

    let bytes = files::read_bounded(&mut response, limits.max_bytes).map_err(|error| {
        if is_timeout(&error) {
            timeout(url, limits)
        } else {
            transfer(url, error_chain(&error))
        }
    })?;
    let bytes = bytes.ok_or_else(|| too_large(url, limits))?;
    check_wasm(url, &bytes, content_type.as_deref())?;
    Ok(Fetched::Body(bytes, validators))
}

/// Reads the `file://` URL `url`, whose path is `path`, and checks that it
/// is Wasm.
pub(super) fn read_local(
    url: &str,
    path: &Path,
    limits: FetchLimits,
) -> Result<Vec<u8>, SourceError> {
    // Absolute, so the message shows which working directory applied.
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let bytes = files::read(&path, limits.max_bytes, Accept::RegularFile).map_err(|e| match e {
        ReadError::TooLarge { .. } => too_large(url, limits),
        other => SourceError::File {
            url: url.to_owned(),
            source: other,
        },
    })?;
    check_wasm(url, &bytes, None)?;
    Ok(bytes)
}

/// Accepts `bytes` if they start with the Wasm magic; otherwise says why
/// not, recognising the common case of an HTML or text page.
fn check_wasm(url: &str, bytes: &[u8], content_type: Option<&str>) -> Result<(), SourceError> {
    if bytes.starts_with(WASM_MAGIC) {
        return Ok(());
    }
    let mime = content_type
        .and_then(|value| value.split(';').next())
        .map(|mime| mime.trim().to_ascii_lowercase());
    let evidence = match mime {
        Some(mime) if mime.starts_with("text/") || mime.ends_with("+xml") => {
            Some(format!("Content-Type {mime}"))
        }
        _ if bytes.trim_ascii_start().starts_with(b"<") => {
            Some("the content starts with `<`".to_owned())
        }
        _ => None,
    };
    Err(match evidence {
        Some(evidence) => SourceError::HtmlInsteadOfWasm {
            url: url.to_owned(),
            evidence,
        },
        None => SourceError::NotWasm {
            url: url.to_owned(),
        },
    })
}

fn request_error(url: &str, limits: FetchLimits, error: &reqwest::Error) -> SourceError {
    if error.is_timeout() {
        timeout(url, limits)
    } else if error.is_builder() {
        bad_url(url, &reqwest_reason(error))
    } else if error.is_connect() {
        SourceError::Unreachable {
            url: url.to_owned(),
            reason: reqwest_reason(error),
        }
    } else {
        transfer(url, reqwest_reason(error))
    }
}

/// The causes of a reqwest error, without reqwest's own generic message
/// ("error sending request for url (…)"), which repeats the URL.
fn reqwest_reason(error: &reqwest::Error) -> String {
    match std::error::Error::source(error) {
        Some(cause) => error_chain(cause),
        None => error.to_string(),
    }
}

/// Body reads report reqwest's timeout wrapped in an `io::Error`.
fn is_timeout(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::TimedOut
        || error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
            .is_some_and(reqwest::Error::is_timeout)
}

fn bad_url(url: &str, reason: &str) -> SourceError {
    SourceError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    }
}

fn timeout(url: &str, limits: FetchLimits) -> SourceError {
    SourceError::Timeout {
        url: url.to_owned(),
        timeout: limits.timeout,
    }
}

fn too_large(url: &str, limits: FetchLimits) -> SourceError {
    SourceError::TooLarge {
        url: url.to_owned(),
        limit: limits.max_bytes,
    }
}

fn transfer(url: &str, reason: String) -> SourceError {
    SourceError::Transfer {
        url: url.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests;
