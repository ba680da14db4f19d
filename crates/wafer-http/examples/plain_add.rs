//! The baseline of the HTTP benchmark: a plain axum handler that adds the
//! two numbers of a JSON array, with no Wasm, on the same HTTP stack and
//! Tokio runtime as `wafer run`. BENCHMARKS.md compares `wafer run`'s
//! `payload` endpoint against it, and its `GET /hello` is the upstream of
//! the outbound-call benchmark (benches/proxy).
//!
//! ```text
//! cargo run --release -p wafer-http --example plain_add -- 127.0.0.1:9000
//! ```

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};

async fn add(body: Bytes) -> impl IntoResponse {
    match serde_json::from_slice::<[i32; 2]>(&body) {
        Ok([a, b]) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            a.wrapping_add(b).to_string(),
        ),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string(),
        ),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("Listening on http://{}", listener.local_addr()?);
    let router = Router::new()
        .route("/add", post(add))
        .route("/hello", get(|| async { "hello from upstream\n" }));
    axum::serve(listener, router).await
}
