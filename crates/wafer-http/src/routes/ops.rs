//! `/healthz`, `/readyz` and `/metrics`: outside the service's request
//! limits, so that they answer under load.

use axum::Router;
use axum::http::{Method, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::ServiceRoutes;

/// The content type of Prometheus' OpenMetrics text.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(super) fn routes(routes: &ServiceRoutes<'_>) -> Router {
    let healthz = routes.observer("/healthz", None, false);
    // A service listens only once every function is compiled and warm.
    let readyz = routes.observer("/readyz", None, false);
    let scrape = routes.observer("/metrics", None, false);
    let (runtime, metrics) = (routes.runtime.clone(), routes.metrics.clone());
    let exposition = move || {
        let calls = runtime.metrics_text();
        // One exposition: the runtime's families, then the HTTP ones and
        // their `# EOF`.
        let calls = calls.strip_suffix("# EOF\n").unwrap_or(&calls);
        let text = format!("{calls}{}", metrics.render());
        ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response()
    };
    Router::new()
        .route(
            "/healthz",
            get(move || async move {
                let answer = async { "ok\n".into_response() };
                healthz.serve(&Method::GET, None, answer).await
            }),
        )
        .route(
            "/readyz",
            get(move || async move {
                let answer = async { "ready\n".into_response() };
                readyz.serve(&Method::GET, None, answer).await
            }),
        )
        .route(
            "/metrics",
            get(move || async move {
                let answer = async { exposition() };
                scrape.serve(&Method::GET, None, answer).await
            }),
        )
}
