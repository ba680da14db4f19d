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
//!     batch: 128
//!     create_stream: {subjects: [in.>]}   # only if it may be missing
//! ```
//!
//! * Several wafer processes with the same `durable` share one consumer:
//!   each message goes to one of them. Without `durable` the consumer is
//!   the process's own and goes away with it. `bind: true` uses a
//!   consumer that must exist, as it is; otherwise the consumer is
//!   created, or updated to these fields.
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
//!   and the first value of each of its headers.
//! * Connection fields (`urls`, `auth`, `tls`): see `crate::nats`. A lost
//!   connection pauses the input; the client reconnects and the consumer
//!   goes on where it stood.
//!
//! On Ctrl-C the input stops taking messages and NAKs those it holds and
//! has not handed over, so that they go to another process at once; the
//! run ends once the messages in flight are written and acknowledged.
//!
//! Delivery is at least once: a process that dies holding messages leaves
//! them to be delivered again (after `ack_wait`) to another. An output
//! that de-duplicates (`nats_jetstream`'s `Nats-Msg-Id`) makes the result
//! exactly once.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{self, AckKind, Message as JsMessage};
use futures_util::{FutureExt, StreamExt};
use serde::Deserialize;
use wafer::Message;
use wafer_nats::async_nats;
use wafer_nats::{Auth, Tls};

use super::Input;
use crate::config::duration::GoDuration;
use crate::config::{ComponentConfig, ComponentError};
use crate::nats::{Link, StreamSpec, headers_to_metadata};
use crate::{BoxFuture, BuildContext, Settled, Sink, Stopped, Tracked};

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
    #[serde(default = "default_max_ack_pending")]
    max_ack_pending: i64,
    max_deliver: Option<i64>,
    #[serde(default = "default_nak_delay")]
    nak_delay: Vec<GoDuration>,
    #[serde(default = "default_batch")]
    batch: usize,
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

fn default_max_ack_pending() -> i64 {
    1024
}

fn default_nak_delay() -> Vec<GoDuration> {
    ["1s", "5s", "30s"]
        .into_iter()
        .map(GoDuration::of)
        .collect()
}

fn default_batch() -> usize {
    128
}

struct JetStreamInput {
    runtime: Arc<wafer::Runtime>,
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
    if parsed.max_ack_pending < 1 {
        return Err(ComponentError::invalid("max_ack_pending", "at least 1"));
    }
    if parsed.max_deliver.is_some_and(|n| n < 1) {
        return Err(ComponentError::invalid(
            "max_deliver",
            "at least 1 (leave it out for no limit)",
        ));
    }
    if parsed.batch == 0 {
        return Err(ComponentError::invalid("batch", "at least 1"));
    }
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
        max_ack_pending: parsed.max_ack_pending,
        max_deliver: parsed.max_deliver.unwrap_or(-1),
        ..Default::default()
    };
    Ok(Box::new(JetStreamInput {
        runtime: cx.runtime.clone(),
        link,
        stream: parsed.stream,
        consumer,
        bind: parsed.bind,
        nak_delay: parsed.nak_delay.into_iter().map(|d| d.0).collect(),
        batch: parsed.batch,
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
}

impl JetStreamInput {
    async fn consume(self, mut sink: Sink) -> Result<(), String> {
        let client = self.link.connect(&self.runtime).await?;
        let jetstream = jetstream::new(client.clone());
        let consumer = self.consumer(&jetstream).await?;
        let info = consumer.cached_info();
        let (stream, name) = (info.stream_name.clone(), info.name.clone());
        // The consumer's own limit: a bound or older consumer may differ
        // from this config.
        let max_deliver = info.config.max_deliver;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(self.batch)
            .messages()
            .await
            .map_err(|e| format!("cannot consume from stream {stream}: {e}"))?
            .ready_chunks(self.batch);
        tracing::info!(
            component = %self.link.component(),
            servers = %self.link.servers(),
            "Consuming JetStream stream {stream} as consumer {name}."
        );
        let mut failing = false;
        let mut stopping = sink.stopping();
        loop {
            let chunk = tokio::select! {
                biased;
                () = stopping.requested() => break,
                chunk = messages.next() => chunk,
            };
            let Some(chunk) = chunk else {
                return Err(format!(
                    "the consumer {name} of stream {stream} stopped delivering (deleted?)"
                ));
            };
            let mut taken = Vec::with_capacity(chunk.len());
            for next in chunk {
                match next {
                    Ok(message) => taken.push(message),
                    // Transient (a missed heartbeat while the server
                    // restarts): the stream pulls again once reconnected.
                    Err(error) if !failing => {
                        failing = true;
                        tracing::warn!(component = %self.link.component(), %error, "JetStream consumer: waiting for the server.");
                    }
                    Err(error) => {
                        tracing::debug!(component = %self.link.component(), %error, "JetStream consumer error.");
                    }
                }
            }
            if taken.is_empty() {
                continue;
            }
            if std::mem::take(&mut failing) {
                tracing::info!(component = %self.link.component(), "JetStream consumer: receiving again.");
            }
            let (tracked, ackers): (Vec<Tracked>, Vec<Acker>) = taken
                .into_iter()
                .map(|message| to_tracked(message, max_deliver))
                .unzip();
            let sent = tokio::select! {
                biased;
                () = stopping.requested() => Err(Stopped),
                sent = sink.send_tracked(tracked) => sent,
            };
            let Ok(settled) = sent else {
                settle_and_flush(&client, ackers, Err(String::new()), &[]).await;
                return Ok(());
            };
            let (nak_delay, client) = (self.nak_delay.clone(), client.clone());
            sink.settle_later(async move {
                let outcome = settled
                    .await
                    .unwrap_or_else(|_| Err("the pipeline dropped the batch".to_string()));
                settle_and_flush(&client, ackers, outcome, &nak_delay).await;
            });
        }
        // Stopping: what the client already holds goes back to the server
        // at once, for another process (or the next run) to take, rather
        // than after `ack_wait`.
        let mut held = Vec::new();
        while let Some(Some(chunk)) = messages.next().now_or_never() {
            held.extend(
                chunk
                    .into_iter()
                    .flatten()
                    .map(|m| to_tracked(m, max_deliver).1),
            );
        }
        settle_and_flush(&client, held, Err(String::new()), &[]).await;
        Ok(())
    }

    /// The consumer: bound as it is, or created (or updated) from the
    /// config; the stream created first when `create_stream` says so.
    async fn consumer(&self, jetstream: &jetstream::Context) -> Result<PullConsumer, String> {
        let stream_name = match (&self.stream, &self.create_stream) {
            (Some(name), Some(spec)) => {
                spec.ensure(jetstream, name).await?;
                name.clone()
            }
            (Some(name), None) => name.clone(),
            (None, _) => {
                let subject = &self.consumer.filter_subject;
                jetstream
                    .stream_by_subject(subject.clone())
                    .await
                    .map_err(|e| format!("no stream holds subject {subject}: {e}"))?
            }
        };
        let stream = jetstream
            .get_stream(&stream_name)
            .await
            .map_err(|e| format!("cannot open stream {stream_name}: {e}"))?;
        if self.bind {
            let durable = self.consumer.durable_name.as_deref().unwrap_or_default();
            return stream.get_consumer(durable).await.map_err(|e| {
                format!("cannot bind consumer {durable} of stream {stream_name}: {e}")
            });
        }
        stream
            .create_consumer(self.consumer.clone())
            .await
            .map_err(|e| format!("cannot create the consumer of stream {stream_name}: {e}"))
    }
}

/// What acknowledges one message, and how many times it was delivered.
struct Acker {
    acker: jetstream::message::Acker,
    delivered: i64,
}

/// A JetStream message as a pipeline message with its metadata, and its
/// acker.
fn to_tracked(message: JsMessage, max_deliver: i64) -> (Tracked, Acker) {
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
    }
    let (message, acker) = message.split();
    let tracked = Tracked {
        message: Message {
            bytes: message.payload,
            metadata,
            timestamp,
            error: None,
        },
        redeliverable: max_deliver < 1 || delivered < max_deliver,
    };
    (tracked, Acker { acker, delivered })
}

/// How long acknowledging a batch may wait for the server: a pipeline
/// stopping while the broker is away must still end.
const SETTLE_PATIENCE: Duration = Duration::from_secs(10);

/// [`settle`], then the acknowledgements flushed to the server (the
/// process may be about to end), or given up after [`SETTLE_PATIENCE`]:
/// what was not acknowledged is delivered again.
async fn settle_and_flush(
    client: &async_nats::Client,
    ackers: Vec<Acker>,
    outcome: Result<Vec<Settled>, String>,
    nak_delay: &[Duration],
) {
    let settled = async {
        settle(ackers, outcome, nak_delay).await;
        let _ = client.flush().await;
    };
    if tokio::time::timeout(SETTLE_PATIENCE, settled)
        .await
        .is_err()
    {
        tracing::warn!(
            "Could not acknowledge a batch to JetStream in time; its messages will be delivered again."
        );
    }
}

/// Acknowledges what the pipeline is done with and NAKs what it hands
/// back (after its delay) or could not finish (at once).
async fn settle(ackers: Vec<Acker>, outcome: Result<Vec<Settled>, String>, nak_delay: &[Duration]) {
    match outcome {
        Ok(settled) => {
            for (acker, settled) in ackers.into_iter().zip(settled) {
                let kind = match settled {
                    Settled::Done => AckKind::Ack,
                    Settled::Retry(_) => AckKind::Nak(delay(nak_delay, acker.delivered)),
                };
                acknowledge(&acker, kind).await;
            }
        }
        Err(_) => {
            for acker in ackers {
                acknowledge(&acker, AckKind::Nak(None)).await;
            }
        }
    }
}

/// The delay before delivery `delivered + 1`: the list's entry for this
/// delivery, its last one past its end.
fn delay(nak_delay: &[Duration], delivered: i64) -> Option<Duration> {
    let index = usize::try_from(delivered.max(1) - 1).unwrap_or(usize::MAX);
    nak_delay.get(index).or(nak_delay.last()).copied()
}

async fn acknowledge(acker: &Acker, kind: AckKind) {
    // A lost acknowledgement only means a delivery again, which an
    // output that de-duplicates absorbs.
    if let Err(error) = acker.acker.ack_with(kind).await {
        tracing::debug!(%error, "Could not acknowledge a JetStream message; it will be delivered again.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nak_delay_follows_the_delivery_count_and_repeats_its_last() {
        let delays = [Duration::from_secs(1), Duration::from_secs(5)];
        assert_eq!(delay(&delays, 1), Some(delays[0]));
        assert_eq!(delay(&delays, 2), Some(delays[1]));
        assert_eq!(delay(&delays, 9), Some(delays[1]));
        assert_eq!(delay(&[], 3), None);
    }
}
