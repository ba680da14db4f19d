//! The registry's routes checked together: each endpoint's service, paths
//! that are wafer's own, endpoints only a wasi:http proxy may have (no
//! `method`, a `/...` prefix), and endpoints that answer the same
//! requests. What passes here, the router takes without a conflict.

use std::collections::BTreeMap;

use super::Abi;
use super::entry::{Entry, EntryKind};
use super::http::{HttpEndpointConfig, RoutePath, RouteSegment, service_ids, service_of};
use crate::error::{Problem, ProblemKind};

/// Across the registry: an endpoint names its service when there are
/// several, and no two endpoints of a service answer the same requests (the
/// one declared later is refused, naming the first). `declared` is every
/// id in declaration order.
pub(super) fn route_problems(by_id: &BTreeMap<String, Entry>, declared: &[String]) -> Vec<Problem> {
    let services = service_ids(by_id.values());
    let mut problems = Vec::new();
    // Every route kept so far, with the service it is on.
    let mut routes: Vec<(String, &Entry, &HttpEndpointConfig)> = Vec::new();
    for entry in declared.iter().filter_map(|id| by_id.get(id)) {
        let EntryKind::HttpEndpoint(endpoint) = &entry.kind else {
            continue;
        };
        let service = match service_of(endpoint, &services) {
            Ok(service) => service.unwrap_or_default().to_string(),
            Err(several) => {
                problems.push(entry.problem(
                    ProblemKind::MissingField,
                    "service",
                    format!(
                        "missing: the registry declares several http.service entries ({several})"
                    ),
                ));
                continue;
            }
        };
        if let Some(reserved) = reserved_route(&endpoint.path) {
            problems.push(entry.problem(
                ProblemKind::InvalidValue,
                "path",
                format!("{} is wafer's own route ({reserved})", endpoint.path),
            ));
            continue;
        }
        if let Some(problem) = proxy_only(entry, endpoint, by_id) {
            problems.push(problem);
            continue;
        }
        let first = routes
            .iter()
            .find(|(theirs, _, other)| *theirs == service && clash(endpoint, other));
        match first {
            Some((_, first, theirs)) => {
                problems.push(entry.problem(
                    ProblemKind::InvalidValue,
                    "path",
                    format!(
                        "{} {} answers the same requests as {} ({} {})",
                        endpoint.method.as_deref().unwrap_or("*"),
                        endpoint.path,
                        first.id,
                        theirs.method.as_deref().unwrap_or("*"),
                        theirs.path
                    ),
                ));
            }
            None => routes.push((service, entry, endpoint)),
        }
    }
    problems
}

/// Whether two endpoints of one service answer some request alike, or
/// would make the router refuse the pair: their methods overlap (no
/// `method` is every method) and they claim a path shape in common (a
/// prefix `/a/...` claims `/a` too); or, whatever the methods, one is a
/// prefix and the other has a parameter where the prefix's rest begins
/// (a router cannot tell `/a/{x}` from the rest of `/a/...`).
fn clash(a: &HttpEndpointConfig, b: &HttpEndpointConfig) -> bool {
    let methods = match (&a.method, &b.method) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    let shared_shape = claims(&a.path).iter().any(|s| claims(&b.path).contains(s));
    (methods && shared_shape) || rest_meets_param(a, b) || rest_meets_param(b, a)
}

/// The shapes a path claims: its own, and for a prefix its base too.
fn claims(path: &RoutePath) -> Vec<String> {
    let shape = path.shape();
    match shape.strip_suffix("/...") {
        Some("") => vec!["/".into(), shape.clone()],
        Some(base) => vec![base.to_string(), shape.clone()],
        None => vec![shape],
    }
}

/// Whether `prefix` ends in `/...` where `other` has a parameter.
fn rest_meets_param(prefix: &HttpEndpointConfig, other: &HttpEndpointConfig) -> bool {
    let (base, segments) = (&prefix.path.segments, &other.path.segments);
    prefix.path.prefix
        && segments.len() > base.len()
        && matches!(segments[base.len()], RouteSegment::Param(_))
        && base.iter().zip(segments).all(|(x, y)| match (x, y) {
            (RouteSegment::Literal(x), RouteSegment::Literal(y)) => x == y,
            (RouteSegment::Param(_), RouteSegment::Param(_)) => true,
            _ => false,
        })
}

/// An endpoint that leaves `method` out or ends its path in `/...` must
/// name a wasi:http proxy (a function with `abi: http-proxy`, or with
/// neither `abi` nor `method`).
fn proxy_only(
    entry: &Entry,
    endpoint: &HttpEndpointConfig,
    by_id: &BTreeMap<String, Entry>,
) -> Option<Problem> {
    let function = by_id.get(&endpoint.func)?.function()?;
    if function.abi == Abi::HttpProxy {
        return None;
    }
    if endpoint.method.is_none() {
        return Some(entry.problem(
            ProblemKind::MissingField,
            "method",
            format!(
                "missing required field ({} is not a wasi:http proxy, which alone answers every method)",
                endpoint.func
            ),
        ));
    }
    endpoint.path.prefix.then(|| {
        entry.problem(
            ProblemKind::InvalidValue,
            "path",
            format!(
                "{}: a path prefix (`/...`) is for wasi:http proxies, and {} is not one",
                endpoint.path, endpoint.func
            ),
        )
    })
}

/// What of wafer's own a path would shadow: the operations routes, the
/// function API and Dapr's binding API.
fn reserved_route(path: &RoutePath) -> Option<&'static str> {
    let first = |n: usize| -> Option<&str> {
        match path.segments.get(n)? {
            RouteSegment::Literal(text) => Some(text),
            RouteSegment::Param(_) => None,
        }
    };
    match (first(0)?, first(1)) {
        ("healthz" | "readyz" | "metrics", _) if path.segments.len() == 1 => Some("operations"),
        ("v1", Some("functions")) => Some("the function API"),
        ("v1.0", _) => Some("Dapr's API"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::EntryKind as Kind;

    /// The registry of `yaml`, with its problems as text.
    fn problems_of(yaml: &str) -> (crate::Registry, Vec<String>) {
        let registry = crate::Registry::from_yaml("r.yaml", yaml);
        let problems = registry
            .problems()
            .iter()
            .map(ToString::to_string)
            .collect();
        (registry, problems)
    }

    #[test]
    fn reserved_routes() {
        let reserved = |p: &str| reserved_route(&RoutePath::parse(p).unwrap());
        assert_eq!(reserved("/metrics"), Some("operations"));
        assert_eq!(reserved("/v1/functions/{x}"), Some("the function API"));
        assert_eq!(reserved("/v1.0/healthz"), Some("Dapr's API"));
        assert_eq!(reserved("/metrics/x"), None);
        assert_eq!(reserved("/api/greet"), None);
    }

    #[test]
    fn conflicting_routes_and_missing_services_are_refused() {
        let (registry, problems) = problems_of(
            r#"
version: "1.0"
namespace: app
entries:
  - name: f
    kind: function.wat
    source: '(module (func (export "f")))'
    method: f
  - name: public
    kind: http.service
  - name: admin
    kind: http.service
    addr: 127.0.0.1:9090
  - name: a
    kind: http.endpoint
    method: post
    path: /users/{id}
    func: f
    service: public
  - name: b
    kind: http.endpoint
    method: POST
    path: /users/{name}
    func: f
    service: public
  - name: c
    kind: http.endpoint
    method: POST
    path: /users/{id}
    func: f
    service: admin
  - name: d
    kind: http.endpoint
    method: GET
    path: /x
    func: f
  - name: e
    kind: http.endpoint
    method: GET
    path: /y
    func: nowhere
    service: f
  - name: c
    kind: http.endpoint
    method: POST
    path: /users/{id}
    func: f
    service: admin
"#,
        );
        assert!(
            problems.contains(&"r.yaml: entry app:b: field path: POST /users/{name} answers the same requests as app:a (POST /users/{id})".to_string()),
            "{problems:#?}"
        );
        assert!(problems.iter().any(|p| p.contains("entry app:d: field service: missing: the registry declares several http.service entries (app:admin, app:public)")), "{problems:#?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("entry app:e: field func: refers to app:nowhere")),
            "{problems:#?}"
        );
        assert!(problems.iter().any(|p| p.contains("entry app:e: field service: refers to app:f, a function.wat entry; expected http.service")), "{problems:#?}");
        assert!(registry.get("app:a").is_some() && registry.get("app:c").is_some());
        // A duplicate id is refused as such, not as its own route's twin.
        assert!(
            !problems
                .iter()
                .any(|p| p.contains("same requests as app:c")),
            "{problems:#?}"
        );
        assert!(registry.get("app:b").is_none());
        let Some(Kind::HttpService(admin)) = registry.get("app:admin").map(|e| &e.kind) else {
            panic!("admin is a service");
        };
        assert_eq!(admin.addr.to_string(), "127.0.0.1:9090");
    }

    #[test]
    fn only_proxies_answer_every_method_and_path_prefixes() {
        let (registry, problems) = problems_of(
            r#"
version: "1.0"
namespace: app
entries:
  - name: typed
    kind: function.wat
    source: '(module (func (export "f")))'
    method: f
  - name: proxy
    kind: function.wat
    source: '(component)'
  - { name: any-typed, kind: http.endpoint, path: /t, func: typed }
  - { name: prefix-typed, kind: http.endpoint, method: GET, path: /t/..., func: typed }
  - { name: any-proxy, kind: http.endpoint, path: /p/..., func: proxy }
  - { name: get-proxy, kind: http.endpoint, method: GET, path: /p/..., func: proxy }
  - { name: other-proxy, kind: http.endpoint, method: GET, path: /q, func: proxy }
"#,
        );
        let proxy = registry
            .get("app:proxy")
            .and_then(|e| e.function())
            .unwrap();
        assert_eq!(proxy.abi, Abi::HttpProxy, "no method: a proxy");
        assert!(problems.iter().any(|p| p.contains("entry app:any-typed: field method: missing required field (app:typed is not a wasi:http proxy")), "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("entry app:prefix-typed: field path: /t/...: a path prefix (`/...`) is for wasi:http proxies")), "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("entry app:get-proxy: field path: GET /p/... answers the same requests as app:any-proxy (* /p/...)")), "{problems:#?}");
        assert!(registry.get("app:other-proxy").is_some(), "{problems:#?}");
        assert_eq!(problems.len(), 3, "{problems:#?}");
    }

    #[test]
    fn prefixes_clash_with_their_base_and_with_parameters_below_them() {
        let endpoint = |method: Option<&str>, path: &str| HttpEndpointConfig {
            method: method.map(str::to_string),
            path: RoutePath::parse(path).unwrap(),
            func: "f".into(),
            service: None,
            transport: None,
        };
        let any_app = endpoint(None, "/app/...");
        assert!(clash(&any_app, &endpoint(None, "/app")));
        assert!(clash(&any_app, &endpoint(Some("POST"), "/app/{v}")));
        assert!(clash(
            &endpoint(Some("GET"), "/app/..."),
            &endpoint(Some("GET"), "/app")
        ));
        assert!(!clash(
            &endpoint(Some("GET"), "/app/..."),
            &endpoint(Some("POST"), "/app")
        ));
        assert!(!clash(&any_app, &endpoint(Some("GET"), "/app/users")));
        assert!(!clash(&any_app, &endpoint(Some("GET"), "/other/{v}")));
        assert!(clash(
            &endpoint(Some("GET"), "/u/{id}"),
            &endpoint(Some("GET"), "/u/{name}")
        ));
        assert!(!clash(
            &endpoint(Some("GET"), "/u/{id}"),
            &endpoint(Some("POST"), "/u/{name}")
        ));
    }
}
