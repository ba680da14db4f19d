//! What every request leaves behind: one access-log line (target
//! `wafer::access`: method, route, service, function, status, duration) and
//! its count and latency in `/metrics`, labelled by service, route and
//! method. Each route has its [`RouteObserver`], built once.
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

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::http::Method;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::limits::{Admission, Budget};

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

/// One route's accounting and limits: built once per route, used by every
/// request it answers.
pub(crate) struct RouteObserver {
    service: Arc<str>,
    route: Arc<str>,
    function: Option<Arc<str>>,
    metrics: Arc<HttpMetrics>,
    in_flight: Gauge,
    admission: Admission,
    limited: bool,
}

impl RouteObserver {
    /// The observer of `route` of service `service`, which calls
    /// `function` when it always calls the same one, and runs within the
    /// service's `admission` limits when `limited` (operations routes run
    /// outside them).
    pub fn new(
        service: &str,
        route: &str,
        function: Option<&str>,
        metrics: &Arc<HttpMetrics>,
        admission: &Admission,
        limited: bool,
    ) -> Arc<RouteObserver> {
        let service: Arc<str> = Arc::from(service);
        let in_flight = metrics.in_flight.get_or_create_owned(&ServiceLabels {
            service: service.clone(),
        });
        Arc::new(RouteObserver {
            service,
            route: Arc::from(route),
            function: function.map(Arc::from),
            metrics: metrics.clone(),
            in_flight,
            admission: admission.clone(),
            limited,
        })
    }

    /// What a request starting now may use.
    pub fn budget(&self) -> Budget {
        self.admission.budget()
    }

    /// Answers one request with `handle`, within the route's limits:
    /// counted, timed and logged, naming `function` when the request
    /// chose it. A request whose client hangs up before its answer is
    /// counted and logged with status 499 (nginx's "client closed
    /// request").
    pub async fn serve(
        &self,
        method: &Method,
        function: Option<&str>,
        handle: impl Future<Output = Response>,
    ) -> Response {
        self.in_flight.inc();
        let mut pending = Pending {
            observer: self,
            method,
            function,
            started: Instant::now(),
            status: CLIENT_CLOSED_REQUEST,
        };
        let response = if self.limited {
            self.admission.run(handle).await
        } else {
            handle.await
        };
        pending.status = response.status().as_u16();
        response
    }

    fn record(
        &self,
        method: &Method,
        function: Option<&str>,
        status: u16,
        elapsed: std::time::Duration,
    ) {
        let method = method_label(method);
        let function = function.or(self.function.as_deref()).unwrap_or("-");
        tracing::info!(
            target: "wafer::access",
            service = %self.service,
            function,
            status,
            micros = elapsed.as_micros() as u64,
            "{method} {}",
            self.route
        );
        let metrics = &self.metrics;
        metrics
            .requests
            .get_or_create(&RequestLabels {
                service: self.service.clone(),
                route: self.route.clone(),
                method,
                status,
            })
            .inc();
        metrics
            .durations
            .get_or_create(&RouteLabels {
                service: self.service.clone(),
                route: self.route.clone(),
                method,
            })
            .observe(elapsed.as_secs_f64());
    }
}

/// The status a request is recorded with when its client hangs up first.
const CLIENT_CLOSED_REQUEST: u16 = 499;

/// A request being answered: recorded when it ends, answered or not (a
/// client that hangs up drops the request's future).
struct Pending<'a> {
    observer: &'a RouteObserver,
    method: &'a Method,
    function: Option<&'a str>,
    started: Instant,
    status: u16,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.observer.in_flight.dec();
        let elapsed = self.started.elapsed();
        (self.observer).record(self.method, self.function, self.status, elapsed);
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
