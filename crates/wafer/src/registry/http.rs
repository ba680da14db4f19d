//! `http.service` and `http.endpoint` entries: where a server listens and
//! which function answers which route. `routes` checks them across the
//! whole registry before anything is served.

use std::net::SocketAddr;

use super::Transport;
use super::entry::{Entry, EntryKind, EntrySite, qualify};
use super::fields::Fields;

/// `addr` of an `http.service` that gives none.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";

/// `max_concurrent_requests` of an `http.service` that gives none.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: u32 = 1024;

/// `max_request_ms` of an `http.service` that gives none: 60 s.
pub const DEFAULT_MAX_REQUEST_MS: u64 = 60_000;

/// `max_body_bytes` of an `http.service` that gives none: 16 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 16 << 20;

/// The HTTP methods an endpoint may answer.
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// An `http.service`: a listening address and the APIs served on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpServiceConfig {
    /// Where it listens (`addr`, default [`DEFAULT_HTTP_ADDR`]; `:8080`
    /// means every interface, as in Go).
    pub addr: SocketAddr,
    /// Whether `POST /v1/functions/{id}` is served (`function_api`, default true).
    pub function_api: bool,
    /// Whether Dapr's `/v1.0/bindings/{name}` is served (`dapr_api`, default true).
    pub dapr_api: bool,
    /// How many requests it serves at once (`max_concurrent_requests`,
    /// default [`DEFAULT_MAX_CONCURRENT_REQUESTS`]); one more is answered
    /// 503 at once.
    pub max_concurrent_requests: u32,
    /// How long one request may take, from its headers to its answer
    /// (`max_request_ms`, default [`DEFAULT_MAX_REQUEST_MS`]); a slower one
    /// is stopped and answered 504.
    pub max_request: std::time::Duration,
    /// The largest request body read (`max_body_bytes`, default
    /// [`DEFAULT_MAX_BODY_BYTES`]); a larger one is answered 413.
    pub max_body_bytes: u64,
}

impl HttpServiceConfig {
    /// A service on `addr` with every API on and the default limits.
    pub fn new(addr: SocketAddr) -> HttpServiceConfig {
        HttpServiceConfig {
            addr,
            function_api: true,
            dapr_api: true,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_request: std::time::Duration::from_millis(DEFAULT_MAX_REQUEST_MS),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// An `http.endpoint`: one route and the function that answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpEndpointConfig {
    /// The HTTP method, upper case; `None`: every method (a wasi:http
    /// proxy's endpoint may leave it out).
    pub method: Option<String>,
    /// The path, segment by segment.
    pub path: RoutePath,
    /// The function's id.
    pub func: String,
    /// The service's id; `None` when the registry has one service.
    pub service: Option<String>,
    /// How a request maps onto the call; `None`: as the function's own
    /// `transport` says.
    pub transport: Option<Transport>,
}

/// A route's path: literal segments and `{name}` parameters, and for a
/// wasi:http proxy a final `/...` that makes it a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePath {
    /// The segments between slashes.
    pub segments: Vec<RouteSegment>,
    /// Whether it ends in `/...`: it matches the path itself and every
    /// path below it.
    pub prefix: bool,
}

/// One segment of a [`RoutePath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteSegment {
    /// Matches exactly this text.
    Literal(String),
    /// Matches any one segment, passed as the argument of this name.
    Param(String),
}

impl RoutePath {
    /// Parses `/users/{id}/orders`, or a prefix `/app/...`.
    ///
    /// # Errors
    ///
    /// When the path is not absolute, a segment is empty or holds a brace
    /// that is not a whole `{name}`, a parameter is named twice, or `...`
    /// is not the last segment.
    pub fn parse(path: &str) -> Result<RoutePath, String> {
        let Some(rest) = path.strip_prefix('/') else {
            return Err(format!("`{path}` must start with `/`"));
        };
        let (rest, prefix) = match rest.strip_suffix("...") {
            Some(head) if head.is_empty() || head.ends_with('/') => (head, true),
            _ => (rest, false),
        };
        if rest.split('/').any(|segment| segment == "...") {
            return Err(format!("`{path}`: `...` may only end the path"));
        }
        let mut segments = Vec::new();
        for segment in rest.split('/').filter(|s| !s.is_empty()) {
            let param = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
            match param {
                Some(name) if is_param_name(name) => {
                    if segments.contains(&RouteSegment::Param(name.to_string())) {
                        return Err(format!("`{path}` names the parameter `{name}` twice"));
                    }
                    segments.push(RouteSegment::Param(name.to_string()));
                }
                _ if segment.starts_with([':', '*']) => {
                    return Err(format!(
                        "`{path}`: write the parameter `{segment}` as `{{{}}}`",
                        &segment[1..]
                    ));
                }
                _ if segment.contains(['{', '}']) => {
                    return Err(format!(
                        "`{path}`: `{segment}` must be a whole `{{name}}` parameter (letters, digits, `_`, `-`)"
                    ));
                }
                _ => segments.push(RouteSegment::Literal(segment.to_string())),
            }
        }
        Ok(RoutePath { segments, prefix })
    }

    /// The path with every parameter written `{}`: two routes with the same
    /// shape match the same requests.
    pub(super) fn shape(&self) -> String {
        let mut shape = String::new();
        for segment in &self.segments {
            shape.push('/');
            match segment {
                RouteSegment::Literal(text) => shape.push_str(text),
                RouteSegment::Param(_) => shape.push_str("{}"),
            }
        }
        if self.prefix {
            shape.push_str("/...");
        }
        if shape.is_empty() {
            shape.push('/');
        }
        shape
    }
}

impl std::fmt::Display for RoutePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for segment in &self.segments {
            match segment {
                RouteSegment::Literal(text) => write!(f, "/{text}")?,
                RouteSegment::Param(name) => write!(f, "/{{{name}}}")?,
            }
        }
        match (self.prefix, self.segments.is_empty()) {
            (true, _) => f.write_str("/..."),
            (false, true) => f.write_str("/"),
            (false, false) => Ok(()),
        }
    }
}

/// An address as Go (and so Wippy) writes it: `:8080` listens on every
/// interface, `localhost:8080` on the loopback one.
fn parse_addr(text: &str) -> Option<SocketAddr> {
    if let Some(port) = text.strip_prefix(':') {
        return Some(SocketAddr::from(([0, 0, 0, 0], port.parse().ok()?)));
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        return Some(SocketAddr::from(([127, 0, 0, 1], port.parse().ok()?)));
    }
    text.parse().ok()
}

fn is_param_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// Reads an `http.service` entry's fields.
pub(super) fn parse_service(fields: &mut Fields) -> Option<EntryKind> {
    let addr: Option<String> = fields.optional("addr");
    let written = addr.as_deref().unwrap_or(DEFAULT_HTTP_ADDR);
    let addr = match parse_addr(written) {
        Some(addr) => Some(addr),
        None => {
            fields.problem(
                "addr",
                format!("`{written}` is not an address like 127.0.0.1:8080, [::1]:8080 or :8080"),
            );
            None
        }
    };
    let function_api: Option<bool> = fields.optional("function_api");
    let dapr_api: Option<bool> = fields.optional("dapr_api");
    let max_concurrent_requests: Option<u32> = fields.optional("max_concurrent_requests");
    if max_concurrent_requests == Some(0) {
        fields.problem("max_concurrent_requests", "must be at least 1");
    }
    let max_request_ms: Option<u64> = fields.optional("max_request_ms");
    if max_request_ms == Some(0) {
        fields.problem("max_request_ms", "must be at least 1");
    }
    let max_body_bytes: Option<u64> = fields.optional("max_body_bytes");
    if max_body_bytes == Some(0) {
        fields.problem("max_body_bytes", "must be at least 1");
    }
    let mut config = HttpServiceConfig::new(addr?);
    if let Some(max) = max_body_bytes {
        config.max_body_bytes = max;
    }
    config.function_api = function_api.unwrap_or(true);
    config.dapr_api = dapr_api.unwrap_or(true);
    if let Some(max) = max_concurrent_requests {
        config.max_concurrent_requests = max;
    }
    if let Some(ms) = max_request_ms {
        config.max_request = std::time::Duration::from_millis(ms);
    }
    Some(EntryKind::HttpService(config))
}

/// Reads an `http.endpoint` entry's fields.
pub(super) fn parse_endpoint(fields: &mut Fields, site: &EntrySite) -> Option<EntryKind> {
    // Required unless the function is a wasi:http proxy (checked across
    // the registry, in `routes`).
    let method: Option<String> = fields.optional("method");
    let method_given = fields.has("method");
    let method = method.and_then(|method| {
        let upper = method.to_ascii_uppercase();
        if METHODS.contains(&upper.as_str()) {
            Some(upper)
        } else {
            fields.problem(
                "method",
                format!("`{method}` is not one of {}", METHODS.join(", ")),
            );
            None
        }
    });
    if method_given && method.is_none() {
        return None;
    }
    let path: Option<String> = fields.required("path");
    let path = path.and_then(|path| match RoutePath::parse(&path) {
        Ok(parsed) => Some(parsed),
        Err(message) => {
            fields.problem("path", message);
            None
        }
    });
    let func: Option<String> = fields.required("func");
    let service: Option<String> = fields.optional("service");
    let transport: Option<Transport> = fields.optional("transport");
    Some(EntryKind::HttpEndpoint(HttpEndpointConfig {
        method,
        path: path?,
        func: qualify(site.namespace, &func?),
        service: service.map(|s| qualify(site.namespace, &s)),
        transport,
    }))
}

impl super::Registry {
    /// The endpoints that service `service` answers, in id order.
    pub fn http_endpoints(&self, service: &str) -> Vec<(&Entry, &HttpEndpointConfig)> {
        let services = service_ids(self.entries().iter());
        self.entries()
            .iter()
            .filter_map(|entry| match &entry.kind {
                EntryKind::HttpEndpoint(endpoint) => Some((entry, endpoint)),
                _ => None,
            })
            .filter(|(_, endpoint)| {
                matches!(service_of(endpoint, &services), Ok(Some(s)) if s == service)
            })
            .collect()
    }
}

pub(super) fn service_ids<'a>(entries: impl Iterator<Item = &'a Entry>) -> Vec<&'a str> {
    entries
        .filter(|e| matches!(e.kind, EntryKind::HttpService(_)))
        .map(|e| e.id.as_str())
        .collect()
}

/// The service an endpoint belongs to: the one it names, or the only one;
/// `Ok(None)` when there is none, `Err` with the candidates when it must
/// name one of several. The one rule for it.
pub(super) fn service_of<'a>(
    endpoint: &'a HttpEndpointConfig,
    services: &[&'a str],
) -> Result<Option<&'a str>, String> {
    match (&endpoint.service, services) {
        (Some(service), _) => Ok(Some(service)),
        (None, [only]) => Ok(Some(only)),
        (None, []) => Ok(None),
        (None, several) => Err(several.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_into_literals_and_parameters() {
        let path = RoutePath::parse("/users/{id}/orders/").unwrap();
        assert_eq!(
            path.segments,
            [
                RouteSegment::Literal("users".into()),
                RouteSegment::Param("id".into()),
                RouteSegment::Literal("orders".into()),
            ]
        );
        assert_eq!(path.to_string(), "/users/{id}/orders");
        assert_eq!(path.shape(), "/users/{}/orders");
        assert_eq!(RoutePath::parse("/").unwrap().to_string(), "/");
        assert!(RoutePath::parse("users").is_err());
        assert!(RoutePath::parse("/a/{b").is_err());
        assert!(RoutePath::parse("/a/x{b}").is_err());
        assert!(RoutePath::parse("/{a}/{a}").is_err());
        assert_eq!(
            RoutePath::parse("/users/:id").unwrap_err(),
            "`/users/:id`: write the parameter `:id` as `{id}`"
        );
        assert!(RoutePath::parse("/static/*rest").is_err());
        let prefix = RoutePath::parse("/app/...").unwrap();
        assert!(prefix.prefix);
        assert_eq!(prefix.to_string(), "/app/...");
        assert_eq!(prefix.shape(), "/app/...");
        assert_eq!(RoutePath::parse("/...").unwrap().to_string(), "/...");
        assert!(RoutePath::parse("/a/.../b").is_err());
        assert!(!RoutePath::parse("/a...").unwrap().prefix);
    }

    #[test]
    fn addresses_are_read_as_go_writes_them() {
        assert_eq!(parse_addr(":8080").unwrap().to_string(), "0.0.0.0:8080");
        assert_eq!(
            parse_addr("localhost:3500").unwrap().to_string(),
            "127.0.0.1:3500"
        );
        assert_eq!(parse_addr("[::1]:80").unwrap().to_string(), "[::1]:80");
        assert!(parse_addr("8080").is_none());
        assert!(parse_addr(":99999").is_none());
    }
}
