//! Outbound HTTP: which hosts a guest may call through wasi:http, and the
//! hook that enforces it on every request a guest sends.
//!
//! An entry grants outbound HTTP with `imports: [wasi:http]` and lists the
//! hosts in `allowed_outbound_hosts`, in Spin's syntax ([`HostPattern`]).
//! `imports: [wasi:http]` alone allows nothing. Every request is checked,
//! including each hop of a redirect (wasi:http never follows redirects
//! itself: a guest library that does sends a new request, checked again).
//! A denied request fails in the guest with wasi:http's
//! `HTTP-request-denied`; it is counted
//! (`wafer_outbound_http_requests_total{outcome="denied"}`) and logged with
//! the function and the host, at most a burst of lines then one a second
//! per function (`denials`), so that a guest retrying in a loop cannot
//! flood the log. Admitted requests go out through the function's
//! [`OutboundClient`].

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, OnceLock};

use wasmtime_wasi_http::{ForbiddenHeaderFilter, RequestOptions, WasiBody, WasiHttpHooks};

use crate::metrics::FunctionMetrics;

mod client;
mod connections;
mod denials;

pub(crate) use client::OutboundClient;
use denials::DenialLog;

/// What a function may reach over HTTP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundHttp {
    /// Whether the entry imports `wasi:http` (a Dapr component: whether it
    /// lists hosts at all).
    pub granted: bool,
    /// `allowed_outbound_hosts`: what a granted guest may call.
    pub allowed_hosts: Vec<HostPattern>,
    /// Where the list comes from, for denials.
    pub source: HostsSource,
}

/// Where a function's outbound hosts are listed, as a denial names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HostsSource {
    /// A registry entry's `imports` and `allowed_outbound_hosts`.
    #[default]
    Entry,
    /// A Dapr component's metadata [`DAPR_HOSTS_KEY`].
    DaprMetadata,
}

/// The metadata key of a Dapr `bindings.wasm` component that lists the
/// hosts its guest may call (comma-separated, in Spin's syntax): wafer's
/// own, as Dapr has no allow-list.
pub const DAPR_HOSTS_KEY: &str = "allowedOutboundHosts";

impl OutboundHttp {
    /// Why a request to `scheme://host:port` is refused; `None` when it is
    /// allowed. `port` is the URL's, `None` for the scheme's default.
    pub fn refusal(&self, scheme: &str, host: &str, port: Option<u16>) -> Option<&'static str> {
        let dapr = self.source == HostsSource::DaprMetadata;
        if !self.granted {
            return Some(if dapr {
                "the component lists no hosts in its metadata allowedOutboundHosts"
            } else {
                "the entry does not import wasi:http"
            });
        }
        let port = port.or(match scheme {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        });
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let allowed = self
            .allowed_hosts
            .iter()
            .any(|pattern| pattern.matches(scheme, host, port));
        (!allowed).then_some(if dapr {
            "not in the component's metadata allowedOutboundHosts"
        } else {
            "not in allowed_outbound_hosts"
        })
    }
}

/// One `allowed_outbound_hosts` item: `scheme://host[:port]`, where the
/// scheme may be `*` (`*://` is http or https), the host `*` (any) or
/// `*.example.com` (its subdomains), and the port `*`, a number or a range
/// `8000..8010`. Without a port, the scheme's default port is meant (80
/// for http, 443 for https). A path is refused: the list names hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    text: String,
    scheme: Option<String>,
    host: HostMatch,
    port: PortMatch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    /// `*.example.com`, kept as `.example.com`.
    Subdomains(String),
    Exact(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortMatch {
    Any,
    /// The request's scheme's default port.
    Default,
    /// An inclusive range; one port is a range of one.
    Range(u16, u16),
}

impl HostPattern {
    /// Whether a request to `scheme://host:port` matches (host lower case,
    /// without brackets; port resolved to the scheme's default).
    fn matches(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let host = host.to_ascii_lowercase();
        let host_ok = match &self.host {
            HostMatch::Any => true,
            HostMatch::Subdomains(suffix) => host.ends_with(suffix.as_str()),
            HostMatch::Exact(exact) => *exact == host,
        };
        let port_ok = match (self.port, port) {
            (PortMatch::Any, _) => true,
            (PortMatch::Default, Some(port)) => match scheme {
                "http" => port == 80,
                "https" => port == 443,
                _ => false,
            },
            (PortMatch::Range(low, high), Some(port)) => (low..=high).contains(&port),
            (_, None) => false,
        };
        scheme_ok && host_ok && port_ok
    }
}

impl FromStr for HostPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("`{text}` is not an outbound host ({why})");
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("write scheme://host, e.g. https://api.example.com"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "*" => None,
            s @ ("http" | "https") => Some(s.to_string()),
            _ => return Err(bad("the scheme must be http, https or *")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(bad("a path is not allowed: list the host only"));
        }
        if rest.contains('@') {
            return Err(bad("a user name is not allowed: list the host only"));
        }
        let (host, port) = split_host_port(rest)
            .ok_or_else(|| bad("the host is missing or its `[` is not closed"))?;
        let host = match host.to_ascii_lowercase() {
            any if any == "*" => HostMatch::Any,
            wild if wild.starts_with("*.") && wild.len() > 2 => {
                HostMatch::Subdomains(wild[1..].to_string())
            }
            wild if wild.contains('*') => {
                return Err(bad("`*` stands for a whole host or a leading `*.` only"));
            }
            exact => HostMatch::Exact(exact),
        };
        let port = match port {
            None => PortMatch::Default,
            Some("*") => PortMatch::Any,
            Some(range) => {
                let number = |p: &str| {
                    p.parse::<u16>()
                        .map_err(|_| bad("the port is not a number"))
                };
                match range.split_once("..") {
                    Some((low, high)) => {
                        let (low, high) = (number(low)?, number(high)?);
                        if low > high {
                            return Err(bad("the port range is empty: write low..high"));
                        }
                        PortMatch::Range(low, high)
                    }
                    None => {
                        let port = number(range)?;
                        PortMatch::Range(port, port)
                    }
                }
            }
        };
        Ok(HostPattern {
            text: text.to_string(),
            scheme,
            host,
            port,
        })
    }
}

/// `host[:port]` or `[v6]:port`, brackets dropped.
fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    let (host, port) = match text.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        },
    };
    (!host.is_empty()).then_some((host, port))
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What every instance of a function checks its outbound requests
/// against, and the client that sends those it admits.
pub(crate) struct OutboundGuard {
    function: Arc<str>,
    grant: OutboundHttp,
    metrics: Arc<FunctionMetrics>,
    /// Made at the first request: most functions never send one.
    client: OnceLock<OutboundClient>,
    denials: DenialLog,
}

impl std::fmt::Debug for OutboundGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundGuard")
            .field("function", &self.function)
            .field("grant", &self.grant)
            .finish_non_exhaustive()
    }
}

impl OutboundGuard {
    pub fn new(function: Arc<str>, grant: OutboundHttp, metrics: Arc<FunctionMetrics>) -> Self {
        OutboundGuard {
            function,
            grant,
            metrics,
            client: OnceLock::new(),
            denials: DenialLog::new(),
        }
    }

    /// Sends `request` if [`OutboundGuard::admit`] lets it go; a denial
    /// fails with wasi:http's `HTTP-request-denied`.
    ///
    /// # Errors
    ///
    /// The denial, or why the request got no response.
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> wasmtime_wasi_http::Result<http::Response<WasiBody>> {
        if self.admit(request.uri()).is_err() {
            return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
        }
        self.client().send(request, options).await
    }

    /// The function's client, for a request already admitted.
    pub fn client(&self) -> OutboundClient {
        self.client.get_or_init(OutboundClient::new).clone()
    }

    /// Whether a request to `uri` may go out; a denial, with why, is
    /// logged and counted, an allowed request counted.
    pub fn admit(&self, uri: &http::Uri) -> Result<(), String> {
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri.host().unwrap_or("");
        // A user name in the authority is refused: the connection would be
        // made to the whole authority, not to the host checked.
        let with_user = uri.authority().is_some_and(|a| a.as_str().contains('@'));
        let refusal = match with_user {
            true => Some("an authority with a user name is not allowed"),
            false => self.grant.refusal(&scheme, host, uri.port_u16()),
        };
        match refusal {
            None => {
                self.metrics.count_outbound(true);
                Ok(())
            }
            Some(reason) => {
                self.metrics.count_outbound(false);
                // Host and port only: never a user name or a password.
                let authority = match uri.port_u16() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_string(),
                };
                let denied = format!("HTTP request to {scheme}://{authority} denied: {reason}");
                match self.denials.line_at(std::time::Instant::now()) {
                    Some(0) => {
                        tracing::warn!(function = %self.function, host = %authority, "Outbound {denied}.");
                    }
                    Some(unlogged) => tracing::warn!(
                        function = %self.function,
                        host = %authority,
                        "Outbound {denied} ({unlogged} more denials of this function since the last logged; all are counted)."
                    ),
                    None => {}
                }
                Err(denied)
            }
        }
    }
}

/// wasi:http's hooks for one instance: every request is admitted by the
/// function's [`OutboundGuard`] before it is sent.
pub(crate) struct OutboundHooks(pub Arc<OutboundGuard>);

/// wasi:http's forbidden headers, built once: wasmtime's default check
/// builds its constant list, and an `Arc` of the check, for every header.
static FORBIDDEN: LazyLock<ForbiddenHeaderFilter> = LazyLock::new(|| {
    let names = wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS;
    Arc::new(move |name: &http::HeaderName| names.contains(name))
});

impl WasiHttpHooks for OutboundHooks {
    fn is_forbidden_header(&mut self, name: &http::HeaderName) -> bool {
        FORBIDDEN(name)
    }

    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        FORBIDDEN.clone()
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
                )>,
            > + Send,
    > {
        // Unused, as by wasmtime's own sender.
        _ = fut;
        let guard = self.0.clone();
        Box::new(async move {
            let response = guard.send(request, options).await?;
            let no_failure: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send> =
                Box::new(std::future::ready(Ok(())));
            Ok((response, no_failure))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(hosts: &[&str]) -> OutboundHttp {
        OutboundHttp {
            granted: true,
            allowed_hosts: hosts.iter().map(|h| h.parse().unwrap()).collect(),
            source: HostsSource::Entry,
        }
    }

    #[test]
    fn spin_syntax() {
        let exact = grant(&["https://api.example.com"]);
        assert_eq!(exact.refusal("https", "api.example.com", None), None);
        assert_eq!(exact.refusal("https", "API.example.com", Some(443)), None);
        assert!(
            exact
                .refusal("https", "api.example.com", Some(8443))
                .is_some()
        );
        assert!(exact.refusal("http", "api.example.com", None).is_some());
        assert!(exact.refusal("https", "evil.com", None).is_some());

        let local = grant(&["http://127.0.0.1:8081"]);
        assert_eq!(local.refusal("http", "127.0.0.1", Some(8081)), None);
        assert!(local.refusal("http", "127.0.0.1", Some(8082)).is_some());

        let wild = grant(&["*://*.example.com:*", "http://[::1]:8000..8010"]);
        assert_eq!(wild.refusal("http", "a.example.com", Some(1)), None);
        assert_eq!(wild.refusal("https", "b.a.example.com", None), None);
        assert!(wild.refusal("https", "example.com", None).is_some());
        assert_eq!(wild.refusal("http", "[::1]", Some(8005)), None);
        assert!(wild.refusal("http", "::1", Some(8011)).is_some());

        let any_default = grant(&["*://localhost"]);
        assert_eq!(any_default.refusal("http", "localhost", Some(80)), None);
        assert_eq!(any_default.refusal("https", "localhost", None), None);
        assert!(
            any_default
                .refusal("http", "localhost", Some(443))
                .is_some()
        );
    }

    #[test]
    fn nothing_without_the_import_or_a_list() {
        let none = OutboundHttp::default();
        assert_eq!(
            none.refusal("https", "x.test", None),
            Some("the entry does not import wasi:http")
        );
        let empty = grant(&[]);
        assert_eq!(
            empty.refusal("https", "x.test", None),
            Some("not in allowed_outbound_hosts")
        );
    }

    #[test]
    fn bad_patterns_say_why() {
        let bad = |p: &str| p.parse::<HostPattern>().unwrap_err();
        assert!(bad("api.example.com").contains("scheme://host"));
        assert!(bad("ftp://x.test").contains("http, https or *"));
        assert!(bad("https://x.test/path").contains("path"));
        assert!(bad("https://x*.test").contains("`*`"));
        assert!(bad("https://x.test:port").contains("number"));
        assert!(bad("http://h:9000..8000").contains("empty"));
        assert!(bad("https://user@h").contains("user name"));
        assert!(bad("http://[::1").contains("not closed"));
        assert!("https://x.test/".parse::<HostPattern>().is_ok());
    }
}
