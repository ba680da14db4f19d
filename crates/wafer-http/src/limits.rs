//! The limits every request runs under, per service: how many are answered
//! at once (`max_concurrent_requests`) and how long one may take
//! (`max_request_ms`), and how large a body is read (`max_body_bytes`,
//! enforced where the body is read, with [`crate::BODY_TIMEOUT`]).
//!
//! A request counts against the concurrency limit until its response
//! body is sent (or its client left): a wasi:http proxy streaming its
//! body holds its place as long as it streams.
//!
//! A request over the concurrency limit is answered 503 at once, with
//! `Retry-After`, rather than queued: a client that retries elsewhere does
//! better than one that waits behind a backlog. A request over its time
//! is answered 504: the time limit bounds the whole request, waits
//! included, and its deadline goes into the call ([`Budget::until`]), so
//! that a guest computing on its own thread stops at it too.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wafer::registry::HttpServiceConfig;

use crate::response::request_error;

/// What one request may use: the largest body it may send
/// (`max_body_bytes`), and when its guest must stop (`max_request_ms` from
/// its start), passed to [`wafer::Function::invoke_until`] so that a guest
/// running on its own thread is stopped too.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub body_bytes: usize,
    pub until: Option<Instant>,
}

/// One service's request limits, shared by its routes.
#[derive(Clone)]
pub(crate) struct Admission {
    service: Arc<str>,
    permits: Arc<Semaphore>,
    max_concurrent: u32,
    max_request: Duration,
    max_body: usize,
}

impl Admission {
    pub fn new(service: &str, config: &HttpServiceConfig) -> Admission {
        Admission {
            service: Arc::from(service),
            permits: Arc::new(Semaphore::new(config.max_concurrent_requests as usize)),
            max_concurrent: config.max_concurrent_requests,
            max_request: config.max_request,
            max_body: usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX),
        }
    }

    /// What a request that starts now may use.
    pub fn budget(&self) -> Budget {
        Budget {
            body_bytes: self.max_body,
            until: Instant::now().checked_add(self.max_request),
        }
    }

    /// Answers with `handle` within the limits, or says why not.
    pub async fn run(&self, handle: impl Future<Output = Response>) -> Response {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            let mut response = request_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!(
                    "service {} is answering {} requests already (its max_concurrent_requests)",
                    self.service, self.max_concurrent
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        };
        match tokio::time::timeout(self.max_request, handle).await {
            // The permit goes with the body: it is given back once the
            // body is sent or dropped.
            Ok(response) => response.map(|body| {
                Body::new(HoldsPermit {
                    body,
                    _permit: permit,
                })
            }),
            Err(_) => request_error(
                StatusCode::GATEWAY_TIMEOUT,
                "time_limit",
                format!(
                    "the request's deadline passed: it took longer than {} ms (max_request_ms of service {})",
                    self.max_request.as_millis(),
                    self.service
                ),
            ),
        }
    }
}

/// A response body with its request's place in the concurrency limit,
/// given back once the body is sent or dropped. Its size is the body's, so
/// that a body of known length is sent with `Content-Length`.
struct HoldsPermit {
    body: Body,
    _permit: OwnedSemaphorePermit,
}

impl HttpBody for HoldsPermit {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
