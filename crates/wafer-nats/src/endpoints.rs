//! Functions on NATS subjects: each `nats.endpoint` entry subscribes to
//! its subject in its queue group and answers every request on the
//! request's reply subject, so any NATS client can call the function with
//! request-reply. Every wafer serving the same subject and queue shares
//! the requests, as NATS queue groups do.
//!
//! What a request carries and what the reply holds, by the function's
//! input form (as the HTTP function API, `POST /v1/functions/{id}`):
//!
//! - a typed function takes a JSON array of arguments and answers its
//!   JSON result;
//! - a WASI program (`abi: wasi-command`) takes the payload as its stdin
//!   and the header [`ARGS_HEADER`] (`a,b`) as its arguments, and answers
//!   its stdout, with its exit status in the header [`EXIT_CODE_HEADER`];
//! - a failed call answers `{"error": {"kind": …, "message": …}}` (with
//!   `problems` for a function refused at load), the kind being a
//!   [`wafer::ErrorKind`]'s name, and the header [`ERROR_HEADER`] holding
//!   the kind, so that a result shaped like an error is never taken for
//!   one.
//!
//! A request with the header [`TIMEOUT_HEADER`] has its call stopped when
//! its caller stops waiting.
//!
//! Every call goes through [`wafer::Function::invoke`], the one call path:
//! pools, limits, metrics and error kinds behave as from HTTP or the CLI.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::client::PublishError;
use async_nats::{Client, HeaderMap, Message, Subject, Subscriber};
use futures_util::{FutureExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use wafer::registry::{Entry, NatsEndpointConfig};
use wafer::{
    CommandInput, Error, ErrorKind, Input, InputForm, Output, Problem, ProblemKind, Registry,
    Runtime,
};

use crate::connect::{Auth, Connect, FieldError, Tls, round_trip};

/// How many calls one endpoint runs at once: 1024. Past that, requests
/// wait in the subscription (and go to other members of the queue group
/// meanwhile) until a call ends.
pub const MAX_CONCURRENT_CALLS: usize = 1024;

/// How long a stop waits for the calls in flight and their replies: 30 s.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The request header holding a WASI program's arguments, `a,b`.
pub const ARGS_HEADER: &str = "Wafer-Args";

/// The request header holding how long its caller waits for the reply, in
/// milliseconds: the call is stopped then (as by its own time limit, when
/// that comes first), since nobody would read its answer.
pub const TIMEOUT_HEADER: &str = "Wafer-Timeout-Ms";

/// The reply header holding a WASI program's exit status.
pub const EXIT_CODE_HEADER: &str = "Wafer-Exit-Code";

/// The reply header holding a failed call's error kind (`bad_input`).
pub const ERROR_HEADER: &str = "Wafer-Error";

/// A `nats.endpoint` entry with its connection checked, ready to
/// [`bind`].
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The entry's id.
    pub id: String,
    /// The subject, the queue group and the function.
    pub config: NatsEndpointConfig,
    connect: Connect,
}

impl Endpoint {
    /// The name its connection is known by: in the metrics' `component`
    /// label, and to the server as the client's name.
    pub fn component(&self) -> String {
        format!("nats.endpoint {}", self.id)
    }
}

/// Every `nats.endpoint` of `registry` with its `urls`, `auth` and `tls`
/// checked (relative file paths start at the entry's file), and the
/// problems of those that cannot connect, located by file, entry and
/// field. Nothing connects yet.
pub fn plan(registry: &Registry) -> (Vec<Endpoint>, Vec<Problem>) {
    let mut endpoints = Vec::new();
    let mut problems = Vec::new();
    for (entry, config) in registry.nats_endpoints() {
        match checked_connect(entry, config) {
            Ok(connect) => endpoints.push(Endpoint {
                id: entry.id.clone(),
                config: config.clone(),
                connect,
            }),
            Err(e) => problems.push(entry.problem(ProblemKind::InvalidValue, e.field, e.message)),
        }
    }
    (endpoints, problems)
}

fn checked_connect(entry: &Entry, config: &NatsEndpointConfig) -> Result<Connect, FieldError> {
    let auth: Auth = from_mapping("auth", config.auth.as_ref())?;
    let tls: Tls = from_mapping("tls", config.tls.as_ref())?;
    Connect::new(&config.urls, auth, tls, entry.file.parent())
}

/// `field`'s mapping read as a `T`; the default when it is absent.
fn from_mapping<T: serde::de::DeserializeOwned + Default>(
    field: &str,
    value: Option<&Value>,
) -> Result<T, FieldError> {
    value.map_or(Ok(T::default()), |value| {
        serde_json::from_value(value.clone()).map_err(|e| FieldError {
            field: field.to_string(),
            message: e.to_string(),
        })
    })
}

/// An endpoint connected and subscribed: requests reach it from now on,
/// and wait until [`serve`] answers them.
pub struct BoundEndpoint {
    /// What it serves.
    pub endpoint: Endpoint,
    runtime: Arc<Runtime>,
    client: Client,
    subscriber: Subscriber,
}

/// Why an endpoint could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// No server could be reached, or it refused the credentials.
    #[error("{endpoint}: {message}")]
    Connect {
        /// The entry's id.
        endpoint: String,
        /// Why.
        message: String,
    },
    /// The subscription was refused.
    #[error("{endpoint}: cannot subscribe to {subject}: {source}")]
    Subscribe {
        /// The entry's id.
        endpoint: String,
        /// The subject.
        subject: String,
        /// The client's reason.
        source: async_nats::Error,
    },
}

/// Connects every endpoint (each with its own client, whose state the
/// runtime's metrics and `/readyz` show under [`Endpoint::component`]) and
/// subscribes it to its subject in its queue group. Returns once the
/// server has taken every subscription: a request sent after this is
/// answered.
///
/// # Errors
///
/// The first endpoint that cannot connect or subscribe.
pub async fn bind(
    runtime: &Arc<Runtime>,
    endpoints: Vec<Endpoint>,
) -> Result<Vec<BoundEndpoint>, EndpointError> {
    let mut bound = Vec::with_capacity(endpoints.len());
    for endpoint in endpoints {
        let component = endpoint.component();
        let state = runtime.connection("nats", &component);
        let client = endpoint
            .connect
            .connect(&component, state)
            .await
            .map_err(|message| EndpointError::Connect {
                endpoint: endpoint.id.clone(),
                message,
            })?;
        let subscribe_error = |source: async_nats::Error| EndpointError::Subscribe {
            endpoint: endpoint.id.clone(),
            subject: endpoint.config.subject.clone(),
            source,
        };
        let config = &endpoint.config;
        let subscriber = client
            .queue_subscribe(config.subject.clone(), config.queue.clone())
            .await
            .map_err(|e| subscribe_error(e.into()))?;
        // The server has the subscription once a message sent after it
        // came back.
        round_trip(&client)
            .await
            .map_err(|e| subscribe_error(e.into()))?;
        bound.push(BoundEndpoint {
            endpoint,
            runtime: runtime.clone(),
            client,
            subscriber,
        });
    }
    Ok(bound)
}

/// Answers every endpoint's requests until `stop` completes; then each
/// endpoint unsubscribes, answers the requests it was already given, and
/// waits for its calls in flight and their replies, for up to
/// [`SHUTDOWN_GRACE`].
pub async fn serve(endpoints: Vec<BoundEndpoint>, stop: impl Future<Output = ()> + Send + 'static) {
    let stop = stop.shared();
    let served = futures_util::future::join_all(
        endpoints
            .into_iter()
            .map(|endpoint| tokio::spawn(serve_one(endpoint, stop.clone()))),
    );
    let grace = async {
        stop.clone().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        _ = served => {}
        () = grace => tracing::warn!(
            "NATS calls still running after {} s; leaving them.",
            SHUTDOWN_GRACE.as_secs()
        ),
    }
}

/// One endpoint's loop: a task per request, at most
/// [`MAX_CONCURRENT_CALLS`] at once, whose replies [`send_replies`]
/// gathers while other calls run. A stop is seen at once, even while
/// every call slot is taken.
async fn serve_one(bound: BoundEndpoint, stop: impl Future<Output = ()>) {
    let BoundEndpoint {
        endpoint,
        runtime,
        client,
        mut subscriber,
    } = bound;
    let func: Arc<str> = endpoint.config.func.as_str().into();
    let calls = Arc::new(Semaphore::new(MAX_CONCURRENT_CALLS));
    let (outbox, replies) = mpsc::unbounded_channel();
    let sender = tokio::spawn(send_replies(client.clone(), replies, func.clone()));
    let mut stop = std::pin::pin!(stop);
    let mut draining = false;
    loop {
        // A free slot, then a request for it.
        let next = async {
            let permit = calls.clone().acquire_owned().await.ok()?;
            let request = subscriber.next().await?;
            Some((permit, request))
        };
        let next = tokio::select! {
            biased;
            () = &mut stop, if !draining => {
                // The stream ends once the requests already delivered are
                // read; new ones go to the rest of the queue group.
                if let Err(e) = subscriber.drain().await {
                    tracing::warn!(endpoint = %endpoint.id, "Cannot unsubscribe: {e}");
                    break;
                }
                draining = true;
                continue;
            }
            next = next => next,
        };
        let Some((permit, request)) = next else {
            break;
        };
        let (runtime, func, outbox) = (runtime.clone(), func.clone(), outbox.clone());
        tokio::spawn(async move {
            let Some(reply_to) = request.reply.clone() else {
                tracing::warn!(
                    function = %func,
                    subject = %request.subject,
                    "A message without a reply subject: ignored (send requests)."
                );
                return;
            };
            let reply = answer(&runtime, &func, request).await;
            // The slot is free once the reply is sent.
            let _ = outbox.send((reply_to, reply, permit));
        });
    }
    // Every call's task has ended, its reply sent, once every slot is free.
    let all = u32::try_from(MAX_CONCURRENT_CALLS).unwrap_or(u32::MAX);
    let _ = calls.acquire_many(all).await;
    drop(outbox);
    let _ = sender.await;
    if let Err(e) = round_trip(&client).await {
        tracing::warn!(endpoint = %endpoint.id, "The last replies may be lost: {e}");
    }
}

/// A reply on its way, with the call slot it holds until it is sent.
type Outgoing = (Subject, Reply, OwnedSemaphorePermit);

/// How many replies [`send_replies`] takes at once, at most.
const REPLY_BATCH: usize = 256;

/// Publishes the replies of an endpoint's calls, as they end, until every
/// sender is gone. Each call runs in a task of its own; were each to
/// publish its own reply, the connection would write them one system call
/// each. Gathered here, the replies of the calls that end together leave
/// in one write, as those of a responder answering in its subscription
/// loop do.
async fn send_replies(
    client: Client,
    mut replies: mpsc::UnboundedReceiver<Outgoing>,
    func: Arc<str>,
) {
    let mut batch = Vec::with_capacity(REPLY_BATCH);
    while replies.recv_many(&mut batch, REPLY_BATCH).await > 0 {
        // The calls already queued on this thread end first, their replies
        // joining this batch.
        tokio::task::yield_now().await;
        while batch.len() < REPLY_BATCH {
            match replies.try_recv() {
                Ok(reply) => batch.push(reply),
                Err(_) => break,
            }
        }
        for (reply_to, reply, permit) in batch.drain(..) {
            send_reply(&client, &func, &reply_to, reply).await;
            drop(permit);
        }
    }
}

/// Publishes `reply` to `reply_to`, or, when it cannot be sent, tells the
/// caller why.
async fn send_reply(client: &Client, func: &str, reply_to: &Subject, reply: Reply) {
    let Err(e) = reply.send(client, reply_to).await else {
        return;
    };
    // Most likely an answer over the server's max_payload: the caller is
    // told rather than left to time out.
    let message = format!("the reply could not be sent: {e}");
    let failure = Reply::failure(ErrorKind::Host.as_str(), message, Vec::new());
    if let Err(e) = failure.send(client, reply_to).await {
        tracing::warn!(function = %func, "Cannot reply: {e}");
    }
}

/// The reply to one request.
async fn answer(runtime: &Runtime, func: &str, request: Message) -> Reply {
    // The caller's clock starts when its request arrives.
    let arrived = Instant::now();
    let function = match runtime.function_to_call(func).await {
        Ok(function) => function,
        Err(error) => return Reply::failed(&error),
    };
    let bad_input =
        |message: String| Reply::failure(ErrorKind::BadInput.as_str(), message, Vec::new());
    let header = |name: &str| {
        request
            .headers
            .as_ref()
            .and_then(|headers| headers.get(name))
            .map(|value| value.as_str())
    };
    let until = match header(TIMEOUT_HEADER).map(str::parse::<u64>) {
        None => None,
        Some(Ok(ms)) => Some(arrived + Duration::from_millis(ms)),
        Some(Err(_)) => {
            return bad_input(format!("{TIMEOUT_HEADER} is not a number of milliseconds"));
        }
    };
    let input = match function.input_form() {
        InputForm::Program => Input::Program(
            CommandInput::new()
                .args(program_args(header(ARGS_HEADER)))
                .stdin(request.payload),
        ),
        InputForm::Http => {
            return bad_input(format!(
                "{func} is a wasi:http proxy: call it through its http.endpoint"
            ));
        }
        _ => match serde_json::from_slice::<Value>(&request.payload) {
            Ok(Value::Array(args)) => Input::Json(args),
            Ok(_) => return bad_input("expected a JSON array of arguments".into()),
            Err(e) => return bad_input(format!("the payload is not JSON: {e}")),
        },
    };
    match function.invoke_until(input, until).await {
        Ok(Output::Program(output)) => {
            let mut headers = HeaderMap::new();
            headers.insert(EXIT_CODE_HEADER, output.exit_code.to_string());
            Reply {
                headers: Some(headers),
                payload: output.stdout,
            }
        }
        Ok(output) => Reply {
            headers: None,
            payload: output.into_json().to_string().into_bytes(),
        },
        Err(error) => Reply::failed(&error),
    }
}

/// A program's arguments from [`ARGS_HEADER`], as the HTTP function API
/// reads `?args=`: none when the header is absent or empty, otherwise
/// every comma-separated piece, empty ones included (`a,,b` is three).
fn program_args(header: Option<&str>) -> Vec<&str> {
    match header {
        None | Some("") => Vec::new(),
        Some(args) => args.split(',').collect(),
    }
}

/// What goes back to a caller.
struct Reply {
    headers: Option<HeaderMap>,
    payload: Vec<u8>,
}

impl Reply {
    /// The reply to a failed call, by its error's kind.
    fn failed(error: &Error) -> Reply {
        let problems = match error {
            Error::Refused { problems, .. } => problems.iter().map(ToString::to_string).collect(),
            _ => Vec::new(),
        };
        Reply::failure(error.kind().as_str(), error.to_string(), problems)
    }

    /// `{"error": {"kind": …, "message": …, "problems": […]}}` (`problems`
    /// only when there are some), the kind in [`ERROR_HEADER`] too.
    fn failure(kind: &str, message: String, problems: Vec<String>) -> Reply {
        let mut error = json!({"kind": kind, "message": message});
        if !problems.is_empty() {
            error["problems"] = problems.into();
        }
        let mut headers = HeaderMap::new();
        headers.insert(ERROR_HEADER, kind);
        Reply {
            headers: Some(headers),
            payload: json!({ "error": error }).to_string().into_bytes(),
        }
    }

    /// Publishes it to `subject`.
    async fn send(self, client: &Client, subject: &Subject) -> Result<(), PublishError> {
        match self.headers {
            Some(headers) => {
                client
                    .publish_with_headers(subject.clone(), headers, self.payload.into())
                    .await
            }
            None => client.publish(subject.clone(), self.payload.into()).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::program_args;

    #[test]
    fn program_arguments_are_read_as_the_http_api_reads_them() {
        assert!(program_args(None).is_empty());
        assert!(program_args(Some("")).is_empty());
        assert_eq!(program_args(Some("a")), ["a"]);
        assert_eq!(program_args(Some("a,,b")), ["a", "", "b"]);
        assert_eq!(program_args(Some("a,")), ["a", ""]);
    }
}
