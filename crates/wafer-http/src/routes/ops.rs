//! `/healthz`, `/readyz` and `/metrics`: outside the service's request
//! limits, so that they answer under load.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use wafer::Runtime;

use super::tracked;
use crate::observe::HttpMetrics;

/// The content type of Prometheus' OpenMetrics text.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(super) fn routes(runtime: &Arc<Runtime>, metrics: &Arc<HttpMetrics>) -> Router {
    let (runtime, metrics) = (runtime.clone(), metrics.clone());
    let scrape = get(move || async move {
        let calls = runtime.metrics_text();
        // One exposition: the runtime's families, then the HTTP ones and
        // their `# EOF`.
        let calls = calls.strip_suffix("# EOF\n").unwrap_or(&calls);
        let text = format!("{calls}{}", metrics.render());
        ([(header::CONTENT_TYPE, OPENMETRICS)], text)
    });
    Router::new()
        .route(
            "/healthz",
            tracked(get(|| async { "ok\n" }), "/healthz", None, None),
        )
        // A service listens only once every function is compiled and warm.
        .route(
            "/readyz",
            tracked(get(|| async { "ready\n" }), "/readyz", None, None),
        )
        .route("/metrics", tracked(scrape, "/metrics", None, None))
}
