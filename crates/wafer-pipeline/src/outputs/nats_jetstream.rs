//! `nats_jetstream`: each message published to a JetStream subject, the
//! batch written once the server acknowledged every message of it.
//!
//! ```yaml
//! output:
//!   nats_jetstream:
//!     urls: [nats://127.0.0.1:4222]
//!     subject: out.${! meta("kind") }   # Benthos' interpolation of metadata
//!     msg_id: ${! meta("id") }           # default: from the input's stream, durable and sequence
//!     headers: {Source: wafer}           # values may interpolate too
//!     metadata: {include_prefixes: [app_]}
//!     max_in_flight: 1024
//!     stream: OUT                        # only with create_stream
//!     create_stream: {subjects: [out.>]}
//! ```
//!
//! * `subject`, `msg_id` and `headers` values are literal text with
//!   `${! meta("key") }` (or `${! @key }`) replaced by the message's
//!   metadata ([`crate::config::interpolation`]). A message whose
//!   `subject` or `msg_id` names metadata it does not have, or whose
//!   subject comes out empty or invalid, is rejected (below); a `headers`
//!   value naming missing metadata leaves that header out.
//! * **De-duplication.** Every message is published with a
//!   `Nats-Msg-Id`: `msg_id` when given; otherwise, for a message that
//!   came from a `nats_jetstream` input, `STREAM.DURABLE.SEQUENCE` of the
//!   message it came from (`DURABLE` empty for a consumer that is not
//!   durable), plus `.PART` when a processor split it into several
//!   ([`crate::PART_METADATA`]). A message delivered again after a crash
//!   and published again is then dropped by the server within the
//!   stream's `duplicate_window` (2 minutes by default): processing is at
//!   least once, the output stream holds each message once. The durable
//!   consumer is in the id so that two pipelines reading one stream
//!   through durables of their own into one output stream do not drop
//!   each other's messages as duplicates (the processes sharing a durable
//!   share its name; a consumer that is not durable gets a new name each
//!   run, so it is left out); the dots keep ids apart, since no name may
//!   hold one. Messages from other inputs get no id unless `msg_id`
//!   gives one.
//! * `metadata` picks the metadata sent as headers, as in Benthos
//!   (`include_prefixes`, `include_patterns`); none by default. A header
//!   NATS cannot carry (a value with a line break, a name with a `:`) is
//!   left out, and the first one logged ([`crate::nats`]).
//! * **Rejected messages.** A message the server can never take as it is
//!   (its subject or id cannot be made, it is over the server's
//!   `max_payload` or the stream's `max_msg_size`) is that message's
//!   failure: it follows the pipeline's `on_error` (a dead-letter output,
//!   or dropped), and the rest of the batch is written.
//! * **Retries.** A publish the server did not acknowledge (the
//!   connection is down, no stream holds the subject yet, a stream limit,
//!   a timeout) is published again, with the same id, after a pause that
//!   grows to 2 s, until it is acknowledged: a restarted broker pauses the
//!   pipeline instead of failing it, and nothing is acknowledged upstream
//!   before it is stored. Why is logged at the first retry (and every
//!   20th). Once the pipeline stops (Ctrl-C), it retries for 10 s more
//!   at most, then fails the batch, which is not acknowledged upstream.
//! * `max_in_flight`: how many publishes wait for their acknowledgement
//!   at once.
//! * The connection is made, and `create_stream` applied, as the run
//!   starts: wrong credentials fail the run before it takes a message.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::context::{
    ContextBuilder, PublishAckFuture, PublishError, PublishErrorKind,
};
use async_nats::jetstream::{self, ErrorCode, message::PublishMessage};
use serde::Deserialize;
use wafer::Message;
use wafer_nats::async_nats;
use wafer_nats::{Auth, Tls};

use super::{Output, Rejected};
use crate::config::interpolation::Template;
use crate::config::{ComponentConfig, ComponentError};
use crate::nats::{
    MetadataFilter, Prepared, Publisher, Routed, STOP_PATIENCE, StreamSpec, header_value,
};
use crate::{BoxFuture, BuildContext, PART_METADATA, Stopping};

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
    publisher: Publisher<jetstream::Context>,
    msg_id: Option<Template>,
    max_in_flight: usize,
    create_stream: Option<(String, StreamSpec)>,
}

pub(super) fn build(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Output>, ComponentError> {
    Ok(Box::new(JetStreamOutput::new(config, cx)?))
}

impl JetStreamOutput {
    fn new(
        config: &ComponentConfig,
        cx: &BuildContext<'_>,
    ) -> Result<JetStreamOutput, ComponentError> {
        let parsed: JetStreamOutputConfig = config.parse()?;
        let route = (parsed.subject, parsed.headers, parsed.metadata);
        let publisher = Publisher::new((parsed.urls, parsed.auth, parsed.tls), route, config, cx)?;
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
        Ok(JetStreamOutput {
            publisher,
            msg_id,
            max_in_flight: parsed.max_in_flight,
            create_stream,
        })
    }
}

impl Output for JetStreamOutput {
    fn start(&mut self, stopping: Stopping) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let client = self.publisher.connect().await?;
            // As many publishes may wait for their acknowledgement as a
            // chunk holds: the context's own limit (5000 by default) would
            // otherwise stop a larger chunk half sent, for ever.
            let jetstream = ContextBuilder::new()
                .max_ack_inflight(self.max_in_flight)
                .build(client);
            if let Some((name, spec)) = &self.create_stream {
                spec.ensure(&jetstream, name).await?;
            }
            self.publisher.start(jetstream, stopping);
            Ok(())
        })
    }

    fn write<'a>(
        &'a mut self,
        batch: &'a [Message],
    ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
        Box::pin(async move {
            let msg_id = self.msg_id.as_ref();
            let Prepared {
                ready: publishes,
                mut rejected,
                client: jetstream,
                stopping,
                component,
            } = self
                .publisher
                .prepare(batch, |routed| publish_of(msg_id, routed))?;
            for chunk in publishes.chunks(self.max_in_flight) {
                let mut last_error = None;
                let published = stopping
                    .bounded(
                        STOP_PATIENCE,
                        publish_all(jetstream, chunk, component, &mut last_error),
                    )
                    .await;
                match published {
                    Some(refused) => rejected.extend(refused),
                    None => {
                        let why = last_error.map_or_else(String::new, |e| format!(" (last: {e})"));
                        return Err(format!(
                            "JetStream did not store the batch within {}s of the pipeline stopping{why}; it is not acknowledged",
                            STOP_PATIENCE.as_secs()
                        ));
                    }
                }
            }
            rejected.sort_by_key(|r| r.index);
            Ok(rejected)
        })
    }
}

/// One message, ready to publish (and to publish again).
#[derive(Clone)]
struct Publish {
    /// Its index in the batch.
    index: usize,
    subject: String,
    message: PublishMessage,
}

/// A routed message as a publish, with its id ([`message_id`]), or why it
/// cannot be one.
fn publish_of(msg_id: Option<&Template>, routed: Routed<'_>) -> Result<Publish, String> {
    let mut publish = PublishMessage::build()
        .payload(routed.message.bytes.clone())
        .headers(routed.headers);
    if let Some(id) = message_id(msg_id, routed.message)? {
        publish = publish.message_id(id);
    }
    Ok(Publish {
        index: routed.index,
        subject: routed.subject,
        message: publish,
    })
}

/// `msg_id`, or the id of the JetStream message it came from; one that
/// cannot be a header value is an error (left out, it would defeat
/// de-duplication).
fn message_id(msg_id: Option<&Template>, message: &Message) -> Result<Option<String>, String> {
    let id = match msg_id {
        Some(template) => template
            .render(message)
            .map_err(|e| format!("msg_id: {e}"))?,
        None => {
            let meta = |key: &str| message.metadata.get(key);
            let (Some(stream), Some(sequence)) =
                (meta("nats_stream"), meta("nats_sequence_stream"))
            else {
                return Ok(None);
            };
            let durable = meta("nats_durable").map_or("", String::as_str);
            match meta(PART_METADATA) {
                Some(part) => format!("{stream}.{durable}.{sequence}.{part}"),
                None => format!("{stream}.{durable}.{sequence}"),
            }
        }
    };
    if id.is_empty() {
        return Err("msg_id: the message's id is empty".to_string());
    }
    header_value(&id).map_err(|e| format!("msg_id `{}`: {e}", id.escape_debug()))?;
    Ok(Some(id))
}

/// Publishes `publishes` and waits for every acknowledgement, publishing
/// again (after a growing pause) those that were not acknowledged, until
/// each is stored or rejected: the rejected are answered. `last_error`
/// keeps why the last attempt failed, for when the wait is given up.
async fn publish_all(
    jetstream: &jetstream::Context,
    publishes: &[Publish],
    component: &str,
    last_error: &mut Option<String>,
) -> Vec<Rejected> {
    let mut rejected = Vec::new();
    let mut waiting: Vec<&Publish> = publishes.iter().collect();
    let mut pause = Duration::from_millis(50);
    let mut attempts = 0u32;
    loop {
        let mut sent: Vec<(&Publish, PublishAckFuture)> = Vec::with_capacity(waiting.len());
        let mut failed = Vec::new();
        let mut no_stream = None;
        // Whether `publish`, which failed with `error`, is to be published
        // again; if not, it is rejected.
        let mut retry = |publish: &Publish, error: PublishError| {
            if permanent(&error) {
                rejected.push(Rejected {
                    index: publish.index,
                    error: format!("subject {}: {error}", publish.subject),
                });
                return false;
            }
            if error.kind() == PublishErrorKind::StreamNotFound {
                no_stream = Some(publish.subject.clone());
            }
            *last_error = Some(format!("subject {}: {error}", publish.subject));
            true
        };
        for publish in waiting {
            match jetstream
                .send_publish(publish.subject.clone(), publish.message.clone())
                .await
            {
                Ok(ack) => sent.push((publish, ack)),
                Err(error) => {
                    if retry(publish, error) {
                        failed.push(publish);
                    }
                }
            }
        }
        let acks = futures_util::future::join_all(
            sent.into_iter()
                .map(|(publish, ack)| async move { (publish, ack.await) }),
        )
        .await;
        for (publish, acked) in acks {
            if let Err(error) = acked
                && retry(publish, error)
            {
                failed.push(publish);
            }
        }
        if failed.is_empty() {
            if attempts > 0 {
                tracing::info!(component, "JetStream is acknowledging publishes again.");
            }
            return rejected;
        }
        attempts += 1;
        if attempts == 1 || attempts.is_multiple_of(20) {
            let waiting = failed.len();
            match no_stream {
                Some(subject) => tracing::warn!(
                    component,
                    subject,
                    waiting,
                    attempts,
                    "No JetStream stream holds subject {subject}: publishing again until one does (the pipeline waits; create the stream, or fix the output's subject)."
                ),
                None => {
                    let error = last_error.as_deref().unwrap_or_default();
                    tracing::warn!(
                        component,
                        error,
                        waiting,
                        attempts,
                        "JetStream did not acknowledge publishes; publishing them again (the pipeline waits)."
                    );
                }
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_RETRY_PAUSE);
        waiting = failed;
    }
}

/// Whether the server can never take the message as it is.
fn permanent(error: &PublishError) -> bool {
    match error.kind() {
        PublishErrorKind::MaxPayloadExceeded
        | PublishErrorKind::WrongLastMessageId
        | PublishErrorKind::WrongLastSequence => true,
        // The stream's own limit on one message's size.
        PublishErrorKind::Other => std::error::Error::source(error)
            .and_then(|source| source.downcast_ref::<jetstream::Error>())
            .is_some_and(|e| e.error_code() == ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(body: serde_json::Value) -> JetStreamOutput {
        let runtime = std::sync::Arc::new(wafer::Runtime::new(wafer::Registry::default()).unwrap());
        let cx = BuildContext {
            runtime: &runtime,
            pipeline: "p",
            threads: 1,
            base_dir: None,
            check_only: false,
            dependencies: Default::default(),
        };
        let config = ComponentConfig {
            path: "output".into(),
            label: None,
            kind: "nats_jetstream".into(),
            body,
        };
        JetStreamOutput::new(&config, &cx).unwrap_or_else(|e| panic!("{}: {}", e.field, e.message))
    }

    #[test]
    fn a_message_whose_subject_or_id_cannot_be_made_is_refused_on_its_own() {
        let output = output(serde_json::json!({
            "urls": ["nats://127.0.0.1:4222"],
            "subject": "out.${! meta(\"kind\") }",
            "msg_id": "${! meta(\"id\") }",
        }));
        let good = Message::new("x")
            .with_meta("kind", "a")
            .with_meta("id", "7");
        let publish = |index: usize, message: &Message| {
            let routed = output.publisher.route(index, message)?;
            publish_of(output.msg_id.as_ref(), routed)
        };
        assert_eq!(publish(3, &good).unwrap().index, 3);
        let refused = |message: &Message| publish(0, message).err().unwrap();
        let no_kind = refused(&Message::new("x").with_meta("id", "7"));
        assert!(no_kind.contains("`kind`"), "{no_kind}");
        let no_id = refused(&Message::new("x").with_meta("kind", "a"));
        assert!(no_id.starts_with("msg_id"), "{no_id}");
        let id = |id: &str| Message::new("x").with_meta("kind", "a").with_meta("id", id);
        assert!(refused(&id("1\n2")).contains("line break"));
        assert!(refused(&id("")).contains("empty"));
    }

    #[test]
    fn the_id_comes_from_the_input_message_and_a_broken_one_is_refused() {
        let output = output(serde_json::json!({
            "urls": ["nats://127.0.0.1:4222"],
            "subject": "out",
        }));
        let from = |stream: &str| {
            Message::new("x")
                .with_meta("nats_stream", stream)
                .with_meta("nats_durable", "workers")
                .with_meta("nats_sequence_stream", "9")
        };
        assert_eq!(
            message_id(output.msg_id.as_ref(), &from("IN"))
                .unwrap()
                .as_deref(),
            Some("IN.workers.9")
        );
        // Another consumer of the same stream: another id.
        assert_eq!(
            message_id(
                output.msg_id.as_ref(),
                &from("IN").with_meta("nats_durable", "audit")
            )
            .unwrap()
            .as_deref(),
            Some("IN.audit.9")
        );
        assert_eq!(
            message_id(
                output.msg_id.as_ref(),
                &from("IN").with_meta(PART_METADATA, "1")
            )
            .unwrap()
            .as_deref(),
            Some("IN.workers.9.1")
        );
        // A consumer that is not durable: no name in the id.
        let mut ephemeral = from("IN");
        ephemeral.metadata.remove("nats_durable");
        assert_eq!(
            message_id(output.msg_id.as_ref(), &ephemeral)
                .unwrap()
                .as_deref(),
            Some("IN..9")
        );
        assert_eq!(
            message_id(output.msg_id.as_ref(), &Message::new("x")).unwrap(),
            None
        );
        assert!(message_id(output.msg_id.as_ref(), &from("I\nN")).is_err());
    }

    #[test]
    fn payload_and_message_size_limits_are_permanent_and_a_missing_stream_is_not() {
        let error = |kind| PublishError::new(kind);
        assert!(permanent(&error(PublishErrorKind::MaxPayloadExceeded)));
        assert!(!permanent(&error(PublishErrorKind::StreamNotFound)));
        assert!(!permanent(&error(PublishErrorKind::TimedOut)));
        assert!(!permanent(&error(PublishErrorKind::Other)));
    }
}
