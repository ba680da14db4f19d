//! `nats_jetstream`: each message published to a JetStream subject, the
//! batch written once the server acknowledged every message of it.
//!
//! ```yaml
//! output:
//!   nats_jetstream:
//!     urls: [nats://127.0.0.1:4222]
//!     subject: out.${! meta("kind") }   # Benthos' interpolation of metadata
//!     msg_id: ${! meta("id") }           # default: from the input's stream and sequence
//!     headers: {Source: wafer}           # values may interpolate too
//!     metadata: {include_prefixes: [app_]}
//!     max_in_flight: 1024
//!     stream: OUT                        # only with create_stream
//!     create_stream: {subjects: [out.>]}
//! ```
//!
//! * `subject`, `msg_id` and `headers` values are literal text with
//!   `${! meta("key") }` (or `${! @key }`) replaced by the message's
//!   metadata ([`crate::config::interpolation`]). A message without the
//!   key fails the write, naming it.
//! * **De-duplication.** Every message is published with a
//!   `Nats-Msg-Id`: `msg_id` when given; otherwise, for a message that
//!   came from a `nats_jetstream` input, `STREAM-SEQUENCE` of the message
//!   it came from, plus `-PART` when a processor split it into several
//!   ([`crate::PART_METADATA`]). A message delivered again after a crash
//!   and published again is then dropped by the server within the
//!   stream's `duplicate_window` (2 minutes by default): processing is at
//!   least once, the output stream holds each message once. Messages from
//!   other inputs get no id unless `msg_id` gives one.
//! * `metadata` picks the metadata sent as headers, as in Benthos
//!   (`include_prefixes`, `include_patterns`); none by default.
//! * **Retries.** A publish the server did not acknowledge (the
//!   connection is down, the stream is not there yet, a timeout) is
//!   published again, with the same id, after a pause that grows to 2 s,
//!   until it is acknowledged: a restarted broker pauses the pipeline
//!   instead of failing it, and nothing is acknowledged upstream before
//!   it is stored. A message the server can never take (over its
//!   `max_payload`) fails the write.
//! * `max_in_flight`: how many publishes wait for their acknowledgement
//!   at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::{self, message::PublishMessage};
use serde::Deserialize;
use wafer::Message;
use wafer_nats::async_nats;
use wafer_nats::{Auth, Tls};

use super::Output;
use crate::config::interpolation::Template;
use crate::config::{ComponentConfig, ComponentError};
use crate::nats::{Link, MetadataFilter, Routing, StreamSpec};
use crate::{BoxFuture, BuildContext, PART_METADATA};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JetStreamOutputConfig {
    urls: Vec<String>,
    #[serde(default)]
    auth: Auth,
    #[serde(default)]
    tls: Tls,
    subject: String,
    msg_id: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    metadata: MetadataFilter,
    #[serde(default = "default_max_in_flight")]
    max_in_flight: usize,
    stream: Option<String>,
    create_stream: Option<StreamSpec>,
}

fn default_max_in_flight() -> usize {
    1024
}

/// The longest pause between two attempts at a publish.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);

struct JetStreamOutput {
    runtime: Arc<wafer::Runtime>,
    link: Link,
    routing: Routing,
    msg_id: Option<Template>,
    max_in_flight: usize,
    create_stream: Option<(String, StreamSpec)>,
    /// Connected at the first write.
    jetstream: Option<jetstream::Context>,
}

pub(super) fn build(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Output>, ComponentError> {
    let parsed: JetStreamOutputConfig = config.parse()?;
    let link = Link::new((parsed.urls, parsed.auth, parsed.tls), config, cx)?;
    let routing = Routing::new(&parsed.subject, &parsed.headers, parsed.metadata)?;
    let msg_id = match &parsed.msg_id {
        Some(text) => {
            Some(Template::parse(text).map_err(|e| ComponentError::invalid("msg_id", e))?)
        }
        None => None,
    };
    if parsed.max_in_flight == 0 {
        return Err(ComponentError::invalid("max_in_flight", "at least 1"));
    }
    let create_stream = match (parsed.stream, parsed.create_stream) {
        (Some(name), Some(spec)) => Some((name, spec)),
        (None, Some(_)) => {
            return Err(ComponentError::invalid(
                "create_stream",
                "name the stream to create in `stream`",
            ));
        }
        (_, None) => None,
    };
    Ok(Box::new(JetStreamOutput {
        runtime: cx.runtime.clone(),
        link,
        routing,
        msg_id,
        max_in_flight: parsed.max_in_flight,
        create_stream,
        jetstream: None,
    }))
}

impl Output for JetStreamOutput {
    fn write<'a>(&'a mut self, batch: &'a [Message]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let publishes = batch
                .iter()
                .enumerate()
                .map(|(i, message)| {
                    self.publish_of(message)
                        .map_err(|e| format!("message {i} of the batch: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let jetstream = self.connected().await?.clone();
            for chunk in publishes.chunks(self.max_in_flight) {
                publish_all(&jetstream, chunk, self.link.component()).await?;
            }
            Ok(())
        })
    }
}

/// One message, ready to publish (and to publish again).
#[derive(Clone)]
struct Publish {
    subject: String,
    message: PublishMessage,
}

impl JetStreamOutput {
    /// The connection, made at the first write (with the stream, when
    /// `create_stream` says so).
    async fn connected(&mut self) -> Result<&jetstream::Context, String> {
        if self.jetstream.is_none() {
            let client = self.link.connect(&self.runtime).await?;
            let jetstream = jetstream::new(client);
            if let Some((name, spec)) = &self.create_stream {
                spec.ensure(&jetstream, name).await?;
            }
            self.jetstream = Some(jetstream);
        }
        Ok(self.jetstream.as_ref().expect("connected above"))
    }

    fn publish_of(&self, message: &Message) -> Result<Publish, String> {
        let (subject, headers) = self.routing.route(message)?;
        let mut publish = PublishMessage::build()
            .payload(message.bytes.clone())
            .headers(headers);
        if let Some(id) = self.message_id(message)? {
            publish = publish.message_id(id);
        }
        Ok(Publish {
            subject,
            message: publish,
        })
    }

    /// `msg_id`, or the id of the JetStream message it came from.
    fn message_id(&self, message: &Message) -> Result<Option<String>, String> {
        if let Some(template) = &self.msg_id {
            return template.render(message).map(Some);
        }
        let meta = |key: &str| message.metadata.get(key);
        let (Some(stream), Some(sequence)) = (meta("nats_stream"), meta("nats_sequence_stream"))
        else {
            return Ok(None);
        };
        Ok(Some(match meta(PART_METADATA) {
            Some(part) => format!("{stream}-{sequence}-{part}"),
            None => format!("{stream}-{sequence}"),
        }))
    }
}

/// Publishes `publishes` and waits for every acknowledgement, publishing
/// again (after a growing pause) those that were not acknowledged.
async fn publish_all(
    jetstream: &jetstream::Context,
    publishes: &[Publish],
    component: &str,
) -> Result<(), String> {
    let mut waiting: Vec<&Publish> = publishes.iter().collect();
    let mut pause = Duration::from_millis(50);
    let mut attempts = 0u32;
    loop {
        let mut sent: Vec<(&Publish, PublishAckFuture)> = Vec::with_capacity(waiting.len());
        let mut failed = Vec::new();
        let mut last_error = None;
        for publish in waiting {
            match jetstream
                .send_publish(publish.subject.clone(), publish.message.clone())
                .await
            {
                Ok(ack) => sent.push((publish, ack)),
                Err(error) => {
                    if permanent(error.kind()) {
                        return Err(format!("subject {}: {error}", publish.subject));
                    }
                    last_error = Some(error.to_string());
                    failed.push(publish);
                }
            }
        }
        let acks = futures_util::future::join_all(
            sent.into_iter()
                .map(|(publish, ack)| async move { (publish, ack.await) }),
        )
        .await;
        for (publish, acked) in acks {
            if let Err(error) = acked {
                if permanent(error.kind()) {
                    return Err(format!("subject {}: {error}", publish.subject));
                }
                last_error = Some(error.to_string());
                failed.push(publish);
            }
        }
        if failed.is_empty() {
            if attempts > 0 {
                tracing::info!(component, "JetStream is acknowledging publishes again.");
            }
            return Ok(());
        }
        attempts += 1;
        let error = last_error.unwrap_or_default();
        if attempts == 1 || attempts.is_multiple_of(20) {
            tracing::warn!(component, %error, waiting = failed.len(), attempts, "JetStream did not acknowledge publishes; publishing them again (the pipeline waits).");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_RETRY_PAUSE);
        waiting = failed;
    }
}

/// Whether the server can never take the message as it is.
fn permanent(kind: PublishErrorKind) -> bool {
    matches!(
        kind,
        PublishErrorKind::MaxPayloadExceeded
            | PublishErrorKind::WrongLastMessageId
            | PublishErrorKind::WrongLastSequence
    )
}
