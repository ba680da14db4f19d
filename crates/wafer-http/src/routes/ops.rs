//! `/healthz`, `/readyz` and `/metrics`: outside the service's request
//! limits, so that they answer under load.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::ServiceRoutes;

/// The content type of Prometheus' OpenMetrics text.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(super) fn routes(routes: &ServiceRoutes<'_>) -> Router {
    let (runtime, metrics) = (routes.runtime.clone(), routes.metrics.clone());
    let connections = runtime.clone();
    let readiness = move || {
        let down: Vec<String> = connections
            .connections()
            .iter()
            .filter(|c| !c.is_connected())
            .map(|c| format!("{} connection of {} is down\n", c.broker(), c.component()))
            .collect();
        // The registry generation answering, so that a reload can be
        // seen to have taken effect.
        let generation = format!("generation {}\n", connections.generation());
        if down.is_empty() {
            format!("ready\n{generation}").into_response()
        } else {
            let body = format!("{}{generation}", down.concat());
            (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
        }
    };
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
            routes.fixed_get("/healthz", || "ok\n".into_response()),
        )
        // A service listens only once every function is compiled and warm;
        // it is not ready while a broker connection is down.
        .route("/readyz", routes.fixed_get("/readyz", readiness))
        .route("/metrics", routes.fixed_get("/metrics", exposition))
}
