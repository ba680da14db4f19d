//! The one error type of module loading: every variant names the URL.

use std::time::Duration;

use crate::error::ProblemKind;
use crate::files::ReadError;
use crate::hash::Sha256Hash;

/// Why a module could not be loaded from its URL.
///
/// Every message is one line that starts with or contains the URL, so it can
/// be shown next to the registry entry that named it without more context.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The URL is malformed or its scheme is not http, https or file.
    #[error("{url} is not a usable module URL: {reason}")]
    BadUrl {
        /// The URL as written in the registry.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No connection could be made (DNS failure, refused, TLS failure, ...).
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL that was requested.
        url: String,
        /// The underlying error chain, joined into one line.
        reason: String,
    },

    /// The server did not deliver the whole response within the time limit.
    #[error("{url} did not answer within {} ms", timeout.as_millis())]
    Timeout {
        /// The URL that was requested.
        url: String,
        /// The limit that was exceeded ([`FetchLimits::timeout`](super::FetchLimits::timeout)).
        timeout: Duration,
    },

    /// The server answered with a status outside 200–299.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL that was requested.
        url: String,
        /// The HTTP status code.
        status: u16,
    },

    /// The module is bigger than [`FetchLimits::max_bytes`](super::FetchLimits::max_bytes).
    #[error("{url} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The URL that was requested.
        url: String,
        /// The limit that was exceeded.
        limit: u64,
    },

    /// The content is HTML or other text: typically a login page, an error
    /// page or a "view file" page served in place of the raw binary.
    #[error("{url} sent HTML/text ({evidence}) instead of a WebAssembly binary")]
    HtmlInsteadOfWasm {
        /// The URL that was requested.
        url: String,
        /// What gave it away: the Content-Type, or the leading `<`.
        evidence: String,
    },

    /// The content does not start with the WebAssembly magic `\0asm`.
    #[error("{url} is not a WebAssembly binary (it does not start with \\0asm)")]
    NotWasm {
        /// The URL that was requested.
        url: String,
    },

    /// The content's hash differs from the registry entry's pin. Nothing is
    /// cached in that case.
    #[error("{url} has hash {actual}, but the entry pins {expected}")]
    HashMismatch {
        /// The URL that was requested.
        url: String,
        /// The pin from the registry entry.
        expected: Sha256Hash,
        /// The hash of what was received.
        actual: Sha256Hash,
    },

    /// A `file://` URL's file could not be read, or is no regular file.
    #[error("{url}: {source}")]
    File {
        /// The URL as written in the registry.
        url: String,
        /// Why, naming the path it resolved to (made absolute).
        source: ReadError,
    },

    /// The download failed after the connection was made: the connection
    /// broke while the body was being received, the server's answer was not
    /// valid HTTP, or the HTTP client itself failed.
    #[error("downloading {url} failed: {reason}")]
    Transfer {
        /// The URL that was requested.
        url: String,
        /// The underlying error chain, joined into one line.
        reason: String,
    },
}

impl SourceError {
    /// The kind of registry problem it makes of the entry that named the
    /// URL.
    pub fn problem_kind(&self) -> ProblemKind {
        match self {
            SourceError::BadUrl { .. } => ProblemKind::InvalidValue,
            SourceError::HtmlInsteadOfWasm { .. } | SourceError::NotWasm { .. } => {
                ProblemKind::InvalidModule
            }
            SourceError::HashMismatch { .. } => ProblemKind::HashMismatch,
            SourceError::File { source, .. } => source.problem_kind(),
            SourceError::Unreachable { .. }
            | SourceError::Timeout { .. }
            | SourceError::Status { .. }
            | SourceError::TooLarge { .. }
            | SourceError::Transfer { .. } => ProblemKind::Fetch,
        }
    }
}

/// Joins an error and its sources into one line: reqwest's own message is
/// generic ("error sending request"); the cause is further down the chain.
pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // hyper and reqwest often repeat their cause in their own message.
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    // Some causes (TLS, OS) carry line breaks; the message must stay one line.
    line.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::path::PathBuf;

    #[test]
    fn messages_are_one_line_and_name_the_url() {
        let url = "https://example.test/m.wasm".to_string();
        let errors = [
            SourceError::Timeout {
                url: url.clone(),
                timeout: Duration::from_millis(300),
            },
            SourceError::Status {
                url: url.clone(),
                status: 404,
            },
            SourceError::HashMismatch {
                url: url.clone(),
                expected: Sha256Hash::of(b"a"),
                actual: Sha256Hash::of(b"b"),
            },
            SourceError::File {
                url: url.clone(),
                source: ReadError::Io {
                    path: PathBuf::from("/x.wasm"),
                    source: io::Error::from(io::ErrorKind::NotFound),
                },
            },
        ];
        for error in errors {
            let message = error.to_string();
            assert!(message.contains(&url), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("error sending request")]
    struct Generic(#[source] Repeating);

    #[derive(Debug, thiserror::Error)]
    #[error("tcp connect error: {0}")]
    struct Repeating(#[source] io::Error);

    #[test]
    fn chain_keeps_causes_once() {
        let error = Generic(Repeating(io::Error::other("connection refused")));
        assert_eq!(
            error_chain(&error),
            "error sending request: tcp connect error: connection refused"
        );
    }
}
