//! Serving an HTTP request through a wasi:http proxy component (a function
//! whose ABI is `http-proxy`): what a surface hands the call path
//! ([`HttpCall`], inside [`crate::Input::Http`]) and how the response comes
//! back ([`ResponseReceiver`]).
//!
//! The response arrives as soon as the guest sets it, while the call goes
//! on: the guest streams the body after that, so the call's future must be
//! polled until it ends (spawned, say, as `wasmtime serve` does). When the
//! receiver reports that no response was set, the call's own error says
//! why (a trap, a time limit). A reused instance may end a call without
//! setting a response and keep its outparam: once the call has ended, ask
//! the receiver with `try_recv` rather than wait on it.
//!
//! ```no_run
//! # async fn serve(function: std::sync::Arc<wafer::Function>, request: http::Request<String>)
//! # -> Result<wafer::proxy::Response, Box<dyn std::error::Error>> {
//! use wafer::proxy::HttpCall;
//! let (call, response) = HttpCall::new(request, false);
//! let running = tokio::spawn(async move { function.invoke(wafer::Input::Http(call)).await });
//! match response.await {
//!     Ok(Ok(response)) => Ok(response),
//!     Ok(Err(code)) => Err(format!("the guest answered an error: {code}").into()),
//!     Err(_) => match running.await? {
//!         Err(error) => Err(error.into()),
//!         Ok(_) => Err("the guest set no response".into()),
//!     },
//! }
//! # }
//! ```

use std::fmt;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::sync::oneshot;
use wasmtime_wasi_http::WasiBody;

/// The error a guest may set instead of a response (wasi:http's
/// `error-code`).
pub use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
/// A response body, streamed from the guest as it writes it.
pub use wasmtime_wasi_http::p2::body::HyperOutgoingBody as ResponseBody;

/// The response a proxy component sets.
pub type Response = http::Response<ResponseBody>;

/// Where the response arrives: `Err(_)` (the sender dropped) when the
/// call ended without setting one.
pub type ResponseReceiver = oneshot::Receiver<Result<Response, ErrorCode>>;

/// One request for a proxy component, and where its response goes.
pub struct HttpCall {
    // In a mutex only to be `Sync`, as every [`crate::Input`] is: a body
    // stream is not. It is taken out whole, once.
    request: Mutex<http::Request<WasiBody>>,
    https: bool,
    respond: Responder,
}

impl HttpCall {
    /// A call for `request` (its URI a path and query, with a `Host`
    /// header, or absolute), received over HTTPS or not; and the receiver
    /// its response arrives on. A body that fails while the guest reads it
    /// is an error in the guest's input stream.
    pub fn new<B>(request: http::Request<B>, https: bool) -> (HttpCall, ResponseReceiver)
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: fmt::Display,
    {
        let request = request.map(|body| {
            body.map_err(|e| wasmtime_wasi_http::Error::InternalError(Some(e.to_string())))
                .boxed_unsync()
        });
        let (respond, response) = oneshot::channel();
        let call = HttpCall {
            request: Mutex::new(request),
            https,
            respond,
        };
        (call, response)
    }

    /// The request, the scheme it came by and where its response goes.
    pub(crate) fn into_parts(self) -> (http::Request<WasiBody>, bool, Responder) {
        let request = self
            .request
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        (request, self.https, self.respond)
    }
}

/// Where a proxy's response goes.
pub(crate) type Responder = oneshot::Sender<Result<Response, ErrorCode>>;

impl fmt::Debug for HttpCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpCall")
            .field("https", &self.https)
            .finish_non_exhaustive()
    }
}
