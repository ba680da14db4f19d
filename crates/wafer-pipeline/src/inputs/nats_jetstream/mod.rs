//! `nats_jetstream`: messages of a JetStream stream, through a pull
//! consumer, acknowledged one by one once the output confirmed them.
//!
//! ```yaml
//! input:
//!   nats_jetstream:
//!     urls: [nats://127.0.0.1:4222]
//!     stream: IN              # or only `subject`: the stream that holds it
//!     subject: in.>           # the consumer's filter (optional)
//!     durable: wafer          # several processes with one durable share the messages
//!     deliver: all            # all, last, last_per_subject or new
//!     ack_wait: 30s
//!     max_ack_pending: 1024
//!     max_deliver: 5          # default: no limit
//!     nak_delay: [1s, 5s, 30s]
//!     batch: 128              # default: 128, or max_ack_pending if lower
//!     create_stream: {subjects: [in.>]}   # only if it may be missing
//! ```
//!
//! * Several wafer processes with the same `durable` share one consumer:
//!   each message goes to one of them. Without `durable` the consumer is
//!   the process's own and goes away with it. `bind: true` uses a
//!   consumer that must exist, as it is.
//! * A durable consumer is created from these fields by the first process
//!   that finds it missing, and never changed after: a process that finds
//!   it existing uses it as it is, and logs a warning for each field that
//!   differs from its own config (`max_deliver`, `ack_wait`,
//!   `max_ack_pending`, `subject`, and the server's `backoff`). The
//!   consumer is shared, so the server's config is the one every process
//!   follows; otherwise processes of two versions (a rolling deploy)
//!   would each rewrite it, and one would act on a `max_deliver` the
//!   server no longer has. Change it on the server (`nats consumer edit`),
//!   then restart the processes.
//! * `batch` (the messages one pull request asks for) may not exceed
//!   `max_ack_pending`: the server refuses such a pull. Given both, a
//!   larger `batch` is refused; after binding, it is lowered (with a
//!   warning) to the consumer's own `max_ack_pending` and `max_batch`.
//! * While the input holds a message (taken from the server, waiting for
//!   room in the pipeline, queued, processed, written), it tells the
//!   server every half `ack_wait` (or shortest `backoff` step) that the
//!   message is in progress, so that a slow pipeline never has it
//!   delivered again meanwhile; it stops once the message is acknowledged
//!   or NAKed. One process holds at most `max_ack_pending` messages.
//! * A message is acknowledged only once the output (or, for a failed
//!   one, `on_error`) confirmed it. A processor failure on a message that
//!   has deliveries left is not written: it is NAKed, to be delivered
//!   again after `nak_delay[n - 1]` (`n` the delivery count; the last
//!   delay repeats). On the delivery where `n` reaches the consumer's
//!   `max_deliver` (the server delivers no more after it, and keeps no
//!   dead letters of its own), the failure follows `on_error` like any
//!   other: with `on_error: {output: ...}` a dead letter carrying the
//!   error (metadata `error`) and the delivery count is written, and only
//!   then is the original acknowledged. When the pipeline could not
//!   finish a batch (its output failed), the batch is NAKed at once, for
//!   another process to take.
//! * Each message carries metadata: `nats_subject`, `nats_stream`,
//!   `nats_consumer`, `nats_sequence_stream`, `nats_sequence_consumer`,
//!   `nats_num_delivered`, `nats_num_pending`, `nats_timestamp_unix_nano`,
//!   `nats_durable` (the consumer's name, when it is durable) and the
//!   first value of each of its headers.
//! * Connection fields (`urls`, `auth`, `tls`): see `crate::nats`. A lost
//!   connection pauses the input; the client reconnects and the consumer
//!   goes on where it stood.
//!
//! On Ctrl-C (or a reload that replaces the input) the input stops taking
//! messages, takes in what the server already sent, ends its pull
//! requests (it unsubscribes, confirmed by a round trip), and NAKs what
//! it holds and has not handed over, so that it goes to another process
//! (or the next run) at once; the run ends once the messages in flight
//! are written and acknowledged, and the server confirmed it processed
//! those acknowledgements. Nothing is settled before the requests ended,
//! so the server has no room to send more meanwhile; only a message
//! published in that instant while the consumer had room may come back
//! later, after `ack_wait`.
//!
//! Delivery is at least once: a process that dies holding messages leaves
//! them to be delivered again (after `ack_wait`) to another. An output
//! that de-duplicates (`nats_jetstream`'s `Nats-Msg-Id`) makes the result
//! exactly once.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, Message as JsMessage};
use futures_util::{FutureExt, StreamExt};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;
use wafer::Message;
use wafer_nats::async_nats;
use wafer_nats::{Auth, Tls};

use super::Input;
use crate::config::duration::GoDuration;
use crate::config::{ComponentConfig, ComponentError};
use crate::nats::{Link, StreamSpec, headers_to_metadata};
use crate::{BoxFuture, BuildContext, Sink, Stopped, Tracked};

mod bind;
mod settle;

use settle::{
    Acker, SETTLE_PATIENCE, end_pull_requests, progress, progress_every, settle_and_flush,
    settle_when_done,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JetStreamInputConfig {
    urls: Vec<String>,
    #[serde(default)]
    auth: Auth,
    #[serde(default)]
    tls: Tls,
    stream: Option<String>,
    subject: Option<String>,
    durable: Option<String>,
    #[serde(default)]
    bind: bool,
    #[serde(default)]
    deliver: Deliver,
    #[serde(default = "default_ack_wait")]
    ack_wait: GoDuration,
    max_ack_pending: Option<i64>,
    max_deliver: Option<i64>,
    #[serde(default = "default_nak_delay")]
    nak_delay: Vec<GoDuration>,
    batch: Option<usize>,
    create_stream: Option<StreamSpec>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Deliver {
    #[default]
    All,
    Last,
    LastPerSubject,
    New,
}

fn default_ack_wait() -> GoDuration {
    GoDuration(Duration::from_secs(30))
}

/// `max_ack_pending` when not given: 1024.
const DEFAULT_MAX_ACK_PENDING: i64 = 1024;

fn default_nak_delay() -> Vec<GoDuration> {
    ["1s", "5s", "30s"]
        .into_iter()
        .map(GoDuration::of)
        .collect()
}

/// `batch` when not given: 128 (or `max_ack_pending` if lower).
const DEFAULT_BATCH: usize = 128;

struct JetStreamInput {
    link: Link,
    stream: Option<String>,
    consumer: pull::Config,
    bind: bool,
    nak_delay: Vec<Duration>,
    batch: usize,
    create_stream: Option<StreamSpec>,
}

pub(super) fn build(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Input>, ComponentError> {
    let parsed: JetStreamInputConfig = config.parse()?;
    let link = Link::new((parsed.urls, parsed.auth, parsed.tls), config, cx)?;
    if parsed.stream.is_none() && parsed.subject.is_none() {
        return Err(ComponentError::invalid(
            "stream",
            "name the stream, or a subject it holds",
        ));
    }
    if parsed.create_stream.is_some() && parsed.stream.is_none() {
        return Err(ComponentError::invalid(
            "create_stream",
            "name the stream to create in `stream`",
        ));
    }
    if parsed.bind && parsed.durable.is_none() {
        return Err(ComponentError::invalid(
            "bind",
            "binding takes an existing consumer: name it in `durable`",
        ));
    }
    let max_ack_pending = parsed.max_ack_pending.unwrap_or(DEFAULT_MAX_ACK_PENDING);
    if max_ack_pending < 1 {
        return Err(ComponentError::invalid("max_ack_pending", "at least 1"));
    }
    if parsed.max_deliver.is_some_and(|n| n < 1) {
        return Err(ComponentError::invalid(
            "max_deliver",
            "at least 1 (leave it out for no limit)",
        ));
    }
    let batch = match parsed.batch {
        Some(0) => return Err(ComponentError::invalid("batch", "at least 1")),
        // A pull for more than `max_ack_pending` is refused by the server
        // (409) and repeated at once by the client: nothing is delivered.
        // A bound consumer's own limit is only known once bound.
        Some(batch)
            if (parsed.max_ack_pending.is_some() || !parsed.bind)
                && i64::try_from(batch).unwrap_or(i64::MAX) > max_ack_pending =>
        {
            return Err(ComponentError::invalid(
                "batch",
                format!(
                    "{batch} is more than max_ack_pending ({max_ack_pending}): the server refuses to deliver a larger batch than that; lower batch or raise max_ack_pending"
                ),
            ));
        }
        Some(batch) => batch,
        None => usize::try_from(max_ack_pending).map_or(DEFAULT_BATCH, |m| m.min(DEFAULT_BATCH)),
    };
    let consumer = pull::Config {
        durable_name: parsed.durable.clone(),
        filter_subject: parsed.subject.clone().unwrap_or_default(),
        deliver_policy: match parsed.deliver {
            Deliver::All => DeliverPolicy::All,
            Deliver::Last => DeliverPolicy::Last,
            Deliver::LastPerSubject => DeliverPolicy::LastPerSubject,
            Deliver::New => DeliverPolicy::New,
        },
        ack_policy: AckPolicy::Explicit,
        ack_wait: parsed.ack_wait.0,
        max_ack_pending,
        max_deliver: parsed.max_deliver.unwrap_or(-1),
        ..Default::default()
    };
    Ok(Box::new(JetStreamInput {
        link,
        stream: parsed.stream,
        consumer,
        bind: parsed.bind,
        nak_delay: parsed.nak_delay.into_iter().map(|d| d.0).collect(),
        batch,
        create_stream: parsed.create_stream,
    }))
}

impl Input for JetStreamInput {
    fn run(self: Box<Self>, sink: Sink) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(self.consume(sink))
    }

    fn stops_itself(&self) -> bool {
        true
    }

    /// With a durable consumer: the server keeps where it stands.
    fn position(&self) -> Option<String> {
        let durable = self.consumer.durable_name.as_deref()?;
        let stream = self
            .stream
            .as_deref()
            .unwrap_or(&self.consumer.filter_subject);
        Some(format!(
            "nats_jetstream {} {stream} {durable}",
            self.link.servers()
        ))
    }
}

/// Messages taken from the server and not yet handed to the pipeline,
/// and when they are next due an in-progress acknowledgement.
struct Held {
    tracked: Vec<Tracked>,
    ackers: Vec<Acker>,
    due: Instant,
}

/// What the consume loop needs of the consumer as the server has it.
struct Bound {
    /// Whether it is durable (named, outliving its processes).
    durable: bool,
    /// Its `max_deliver` (below 1: no limit).
    max_deliver: i64,
    /// How often a held message is reported in progress.
    progress_every: Duration,
    /// Messages per pull request.
    batch: usize,
    /// The most messages held and not yet handed to the pipeline.
    hold_limit: usize,
}

impl JetStreamInput {
    async fn consume(self, mut sink: Sink) -> Result<(), String> {
        let client = self.link.connect().await?;
        let jetstream = jetstream::new(client.clone());
        let consumer = self.consumer(&jetstream).await?;
        let info = consumer.cached_info();
        let (stream, name) = (info.stream_name.clone(), info.name.clone());
        // The consumer's own settings: a bound or shared consumer may
        // differ from this config.
        let bound = self.bound(&info.config, &name);
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(bound.batch)
            .messages()
            .await
            .map_err(|e| format!("cannot consume from stream {stream}: {e}"))?
            .ready_chunks(bound.batch);
        tracing::info!(
            component = %self.link.component(),
            servers = %self.link.servers(),
            "Consuming JetStream stream {stream} as consumer {name}."
        );
        let ended =
            || format!("the consumer {name} of stream {stream} stopped delivering (deleted?)");
        let mut failing = false;
        let mut stopping = sink.stopping();
        // Taken, in order, not yet handed to the pipeline.
        let mut waiting: VecDeque<Held> = VecDeque::new();
        // Handed back with a NAK when the input stops.
        let mut held: Vec<Acker> = Vec::new();
        // Set once its pull requests ended: while the pipeline stops,
        // nothing is settled before (see `settle_when_done`).
        let (requests_ended, ended_requests) = watch::channel(false);
        loop {
            let Some(next) = waiting.pop_front() else {
                let chunk = tokio::select! {
                    biased;
                    () = stopping.requested() => break,
                    chunk = messages.next() => chunk.ok_or_else(ended)?,
                };
                let taken = self.take(chunk, &mut failing);
                hold(&mut waiting, taken, &bound);
                continue;
            };
            let Held {
                tracked,
                ackers,
                mut due,
            } = next;
            // While the pipeline has no room for the batch, the input
            // goes on taking what the server sends (it may send no more
            // than `max_ack_pending`), and keeps every message it holds
            // from being delivered again.
            let sent = {
                let mut send = std::pin::pin!(sink.send_tracked(tracked));
                loop {
                    let wake = waiting.iter().map(|h| h.due).fold(due, Instant::min);
                    let room =
                        waiting.iter().map(|h| h.ackers.len()).sum::<usize>() < bound.hold_limit;
                    tokio::select! {
                        biased;
                        () = stopping.requested() => break Err(Stopped),
                        sent = &mut send => break sent,
                        () = tokio::time::sleep_until(wake) => {
                            let now = Instant::now();
                            if due <= now {
                                progress(&ackers).await;
                                due = now + bound.progress_every;
                            }
                            for later in waiting.iter_mut().filter(|h| h.due <= now) {
                                progress(&later.ackers).await;
                                later.due = now + bound.progress_every;
                            }
                        }
                        chunk = messages.next(), if room => {
                            let taken = self.take(chunk.ok_or_else(ended)?, &mut failing);
                            hold(&mut waiting, taken, &bound);
                        }
                    }
                }
            };
            let Ok(settled) = sent else {
                held.extend(ackers);
                break;
            };
            sink.settle_later(settle_when_done(
                client.clone(),
                ackers,
                settled,
                self.nak_delay.clone(),
                (due, bound.progress_every),
                (stopping.clone(), ended_requests.clone()),
            ));
        }
        // Stopping: what the input and the client hold goes back to the
        // server at once, for another process (or the next run) to take,
        // rather than after `ack_wait`.
        held.extend(waiting.into_iter().flat_map(|h| h.ackers));
        // What the server sent before now is on its way: a round trip
        // (the inbox still subscribed) brings it in. Nothing settles
        // meanwhile (see `settle_when_done`), so the server has no room
        // to send more.
        let _ = tokio::time::timeout(SETTLE_PATIENCE, wafer_nats::round_trip(&client)).await;
        while let Some(Some(chunk)) = messages.next().now_or_never() {
            held.extend(chunk.into_iter().flatten().map(|m| to_tracked(m, &bound).1));
        }
        // Unsubscribes the inbox of its pull requests.
        drop(messages);
        end_pull_requests(&client, &consumer).await;
        requests_ended.send_replace(true);
        // Stopping by now: confirmed by a round trip, which also confirms
        // every acknowledgement flushed before it.
        settle_and_flush(&client, held, Err(String::new()), &[], &mut stopping).await;
        Ok(())
    }

    /// The messages of a chunk from the server; errors among them are
    /// logged (once while they go on: `failing`).
    fn take(
        &self,
        chunk: Vec<Result<JsMessage, pull::MessagesError>>,
        failing: &mut bool,
    ) -> Vec<JsMessage> {
        let mut taken = Vec::with_capacity(chunk.len());
        for next in chunk {
            match next {
                Ok(message) => taken.push(message),
                // Transient (a missed heartbeat while the server
                // restarts): the stream pulls again once reconnected.
                Err(error) if !*failing => {
                    *failing = true;
                    tracing::warn!(component = %self.link.component(), %error, "JetStream consumer: waiting for the server.");
                }
                Err(error) => {
                    tracing::debug!(component = %self.link.component(), %error, "JetStream consumer error.");
                }
            }
        }
        if !taken.is_empty() && std::mem::take(failing) {
            tracing::info!(component = %self.link.component(), "JetStream consumer: receiving again.");
        }
        taken
    }

    /// What the loop follows of `config`, the consumer as the server has
    /// it (named `name`): `batch` lowered, with a warning, to what one
    /// pull may ask of it.
    fn bound(&self, config: &consumer::Config, name: &str) -> Bound {
        let mut batch = self.batch;
        // Above `max_ack_pending` a pull is refused (and repeated at once,
        // for ever); above `max_batch` the stream ends.
        for (field, limit) in [
            ("max_ack_pending", config.max_ack_pending),
            ("max_batch", config.max_batch),
        ] {
            if let Ok(limit) = usize::try_from(limit)
                && limit > 0
                && limit < batch
            {
                tracing::warn!(
                    component = %self.link.component(),
                    consumer = %name,
                    "The consumer {name} has {field} {limit}: pulling batches of {limit} messages, not {batch}."
                );
                batch = limit;
            }
        }
        let hold_limit = [config.max_ack_pending, self.consumer.max_ack_pending]
            .into_iter()
            .find(|limit| *limit > 0)
            .and_then(|limit| usize::try_from(limit).ok())
            .unwrap_or(usize::MAX);
        Bound {
            durable: config.durable_name.is_some(),
            max_deliver: config.max_deliver,
            progress_every: progress_every(config),
            batch,
            hold_limit,
        }
    }
}

/// Adds `taken` to the end of `waiting`: the last batch filled up to
/// `batch` messages, then new ones, each due an in-progress
/// acknowledgement half an `ack_wait` from now.
fn hold(waiting: &mut VecDeque<Held>, taken: Vec<JsMessage>, bound: &Bound) {
    let due = Instant::now() + bound.progress_every;
    for message in taken {
        let (tracked, acker) = to_tracked(message, bound);
        match waiting.back_mut() {
            Some(last) if last.tracked.len() < bound.batch => {
                last.tracked.push(tracked);
                last.ackers.push(acker);
            }
            _ => waiting.push_back(Held {
                tracked: vec![tracked],
                ackers: vec![acker],
                due,
            }),
        }
    }
}

/// A JetStream message as a pipeline message with its metadata, and its
/// acker.
fn to_tracked(message: JsMessage, bound: &Bound) -> (Tracked, Acker) {
    let mut metadata = wafer::Metadata::new();
    headers_to_metadata(message.headers.as_ref(), &mut metadata);
    metadata.insert("nats_subject".into(), message.subject.to_string());
    let mut delivered = 1;
    let mut timestamp = SystemTime::now();
    if let Ok(info) = message.info() {
        delivered = info.delivered;
        let published = info.published.unix_timestamp_nanos();
        if let Ok(nanos) = u64::try_from(published) {
            timestamp = UNIX_EPOCH + Duration::from_nanos(nanos);
        }
        let facts = [
            ("nats_stream", info.stream.to_string()),
            ("nats_consumer", info.consumer.to_string()),
            ("nats_sequence_stream", info.stream_sequence.to_string()),
            ("nats_sequence_consumer", info.consumer_sequence.to_string()),
            ("nats_num_delivered", info.delivered.to_string()),
            ("nats_num_pending", info.pending.to_string()),
            ("nats_timestamp_unix_nano", published.to_string()),
        ];
        for (key, value) in facts {
            metadata.insert(key.to_string(), value);
        }
        if bound.durable {
            metadata.insert("nats_durable".to_string(), info.consumer.to_string());
        }
    }
    let (message, acker) = message.split();
    let tracked = Tracked {
        message: Message {
            bytes: message.payload,
            metadata,
            timestamp,
            error: None,
        },
        redeliverable: bound.max_deliver < 1 || delivered < bound.max_deliver,
    };
    (tracked, Acker { acker, delivered })
}
