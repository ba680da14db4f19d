//! What every request leaves behind: one access-log line and its count and
//! latency in `/metrics`, labelled by service, route and method.
//!
//! | series | type | labels |
//! |---|---|---|
//! | `wafer_http_requests_total` | counter | `service`, `route`, `method`, `status` |
//! | `wafer_http_request_duration_seconds` | histogram | `service`, `route`, `method` |
//! | `wafer_http_requests_in_flight` | gauge | `service` |
//!
//! `route` is the route as declared (`/add/{a}`, `/v1/functions/{id}`), or
//! `unmatched` for a path no route answers, so a scan of random paths
//! cannot grow the metrics without bound.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The route a response answered and the function it called: put in the
/// response's extensions for [`observe`] by the route's wrapper, and by a
/// handler whose function depends on the request
/// ([`RouteInfo::called`]).
#[derive(Debug, Clone)]
pub(crate) struct RouteInfo {
    /// The route as declared.
    pub route: Arc<str>,
    /// The function called, when one was.
    pub function: Option<Arc<str>>,
}

impl RouteInfo {
    /// `response`, marked as the answer of a call to `function`; its route
    /// is filled in on the way out.
    pub fn called(function: &str, mut response: Response) -> Response {
        response.extensions_mut().insert(RouteInfo {
            route: Arc::from(""),
            function: Some(Arc::from(function)),
        });
        response
    }
}

/// Upper bounds of the latency buckets, in seconds: 50 µs to 60 s.
const BUCKETS: [f64; 19] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    service: Arc<str>,
    route: Arc<str>,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    service: Arc<str>,
    route: Arc<str>,
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: Arc<str>,
}

type Durations = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The HTTP series of every service of one process.
pub(crate) struct HttpMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Durations,
    in_flight: Family<ServiceLabels, Gauge>,
}

impl HttpMetrics {
    pub fn new() -> HttpMetrics {
        let requests = Family::<RequestLabels, Counter>::default();
        let durations: Durations = Family::new_with_constructor(|| Histogram::new(BUCKETS));
        let in_flight = Family::<ServiceLabels, Gauge>::default();
        let mut registry = Registry::default();
        registry.register(
            "wafer_http_requests",
            "HTTP requests answered, by service, route, method and status.",
            requests.clone(),
        );
        registry.register_with_unit(
            "wafer_http_request_duration",
            "How long HTTP requests took, from their headers to their answer.",
            Unit::Seconds,
            durations.clone(),
        );
        registry.register(
            "wafer_http_requests_in_flight",
            "HTTP requests being answered, by service.",
            in_flight.clone(),
        );
        HttpMetrics {
            registry,
            requests,
            durations,
            in_flight,
        }
    }

    /// The HTTP series in the Prometheus text format, ending in `# EOF`.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// What [`observe`] needs: the service it watches and where it counts.
#[derive(Clone)]
pub(crate) struct Observer {
    pub service: Arc<str>,
    pub metrics: Arc<HttpMetrics>,
}

/// Counts, times and logs one request.
pub(crate) async fn observe(
    State(observer): State<Observer>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let service = ServiceLabels {
        service: observer.service.clone(),
    };
    let in_flight = InFlight::enter(observer.metrics.in_flight.get_or_create_owned(&service));
    let response = next.run(request).await;
    drop(in_flight);
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let info = response.extensions().get::<RouteInfo>();
    let route: Arc<str> = info.map_or_else(|| Arc::from("unmatched"), |i| i.route.clone());
    let function = info.and_then(|i| i.function.as_deref()).unwrap_or("-");
    tracing::info!(
        target: "wafer::access",
        service = %observer.service,
        function,
        status,
        micros = elapsed.as_micros() as u64,
        "{method} {route}"
    );
    let metrics = &observer.metrics;
    metrics
        .requests
        .get_or_create(&RequestLabels {
            service: observer.service.clone(),
            route: route.clone(),
            method,
            status,
        })
        .inc();
    metrics
        .durations
        .get_or_create(&RouteLabels {
            service: observer.service,
            route,
            method,
        })
        .observe(elapsed.as_secs_f64());
    response
}

/// One request in the in-flight gauge, until dropped (a client that hangs
/// up drops the request's future).
struct InFlight(Gauge);

impl InFlight {
    fn enter(gauge: Gauge) -> InFlight {
        gauge.inc();
        InFlight(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
