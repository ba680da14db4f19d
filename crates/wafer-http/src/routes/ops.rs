//! `/healthz`, `/readyz` and `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use wafer::Runtime;

/// The content type of Prometheus' OpenMetrics text.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(super) fn routes(runtime: &Arc<Runtime>) -> Router {
    let metrics = runtime.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        // A service listens only once every function is compiled and warm.
        .route("/readyz", get(|| async { "ready\n" }))
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, OPENMETRICS)],
                    metrics.metrics_text(),
                )
            }),
        )
}
