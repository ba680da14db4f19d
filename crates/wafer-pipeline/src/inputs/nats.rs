//! `nats`: messages of a core NATS subject, for users who need no
//! persistence: what arrives while wafer is not subscribed, or is
//! refused because the pipeline is full, is not kept by anyone (core
//! NATS is at most once). Use `nats_jetstream` when messages must not be
//! lost.
//!
//! ```yaml
//! input:
//!   nats:
//!     urls: [nats://127.0.0.1:4222]
//!     subject: events.>
//!     queue: workers     # optional: processes in one queue group share the messages
//! ```
//!
//! Each message carries `nats_subject`, `nats_reply_subject` (when it has
//! one) and the first value of each header as metadata. Connection
//! fields: `urls`, `auth`, `tls`; a lost connection pauses the input
//! until the client has reconnected and subscribed again.

use futures_util::StreamExt;
use serde::Deserialize;
use wafer::Message;
use wafer_nats::{Auth, Tls};

use super::{Input, MAX_BATCH};
use crate::config::{ComponentConfig, ComponentError};
use crate::nats::{Link, headers_to_metadata};
use crate::{BoxFuture, BuildContext, Sink};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NatsInputConfig {
    urls: Vec<String>,
    #[serde(default)]
    auth: Auth,
    #[serde(default)]
    tls: Tls,
    subject: String,
    queue: Option<String>,
}

struct NatsInput {
    link: Link,
    subject: String,
    queue: Option<String>,
}

pub(super) fn build(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Input>, ComponentError> {
    let parsed: NatsInputConfig = config.parse()?;
    let link = Link::new((parsed.urls, parsed.auth, parsed.tls), config, cx)?;
    if parsed.subject.is_empty() || parsed.subject.contains(char::is_whitespace) {
        return Err(ComponentError::invalid(
            "subject",
            format!("`{}` is not a subject", parsed.subject),
        ));
    }
    Ok(Box::new(NatsInput {
        link,
        subject: parsed.subject,
        queue: parsed.queue.filter(|q| !q.is_empty()),
    }))
}

impl Input for NatsInput {
    /// At most once, with no position: the subject on its servers.
    fn position(&self) -> Option<String> {
        Some(format!("nats {} {}", self.link.servers(), self.subject))
    }

    fn run(self: Box<Self>, mut sink: Sink) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            let client = self.link.connect().await?;
            let subscribed = match &self.queue {
                Some(queue) => {
                    client
                        .queue_subscribe(self.subject.clone(), queue.clone())
                        .await
                }
                None => client.subscribe(self.subject.clone()).await,
            };
            let subscriber =
                subscribed.map_err(|e| format!("cannot subscribe to {}: {e}", self.subject))?;
            // The readiness line promises the server has the subscription:
            // a message sent after it came back.
            wafer_nats::round_trip(&client)
                .await
                .map_err(|e| format!("cannot subscribe to {}: {e}", self.subject))?;
            tracing::info!(
                component = %self.link.component(),
                servers = %self.link.servers(),
                "Subscribed to NATS subject {}.", self.subject
            );
            let mut chunks = subscriber.ready_chunks(MAX_BATCH);
            while let Some(chunk) = chunks.next().await {
                let batch = chunk
                    .into_iter()
                    .map(|message| {
                        let mut metadata = wafer::Metadata::new();
                        headers_to_metadata(message.headers.as_ref(), &mut metadata);
                        metadata.insert("nats_subject".into(), message.subject.to_string());
                        if let Some(reply) = &message.reply {
                            metadata.insert("nats_reply_subject".into(), reply.to_string());
                        }
                        let mut out = Message::new(message.payload);
                        out.metadata = metadata;
                        out
                    })
                    .collect();
                if sink.send(batch).await.is_err() {
                    return Ok(());
                }
            }
            Err(format!("the subscription to {} ended", self.subject))
        })
    }
}
