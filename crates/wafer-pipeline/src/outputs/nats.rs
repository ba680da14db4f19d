//! `nats`: each message published to a core NATS subject; a batch is
//! written once the server has received it (the client flushed it). Core
//! NATS keeps nothing: a message nobody is subscribed to is gone. Use
//! `nats_jetstream` to store messages.
//!
//! ```yaml
//! output:
//!   nats:
//!     urls: [nats://127.0.0.1:4222]
//!     subject: out.${! meta("kind") }
//!     headers: {Source: wafer}
//!     metadata: {include_patterns: [".*"]}
//! ```
//!
//! `subject` and `headers` values interpolate metadata as in
//! `nats_jetstream`; `metadata` picks the metadata sent as headers. A
//! message whose subject cannot be made (metadata it names is missing,
//! the result is not a valid subject), or that is over the server's
//! `max_payload`, is rejected: it follows `on_error`, and the rest of the
//! batch is sent. The connection is made as the run starts. While the
//! server is away the output waits for the client to reconnect; once the
//! pipeline stops it waits 10 s more at most, then fails the batch.

use std::collections::BTreeMap;

use async_nats::client::PublishErrorKind;
use serde::Deserialize;
use wafer::Message;
use wafer_nats::async_nats;
use wafer_nats::{Auth, Tls};

use super::{Output, Rejected};
use crate::config::{ComponentConfig, ComponentError};
use crate::nats::{MetadataFilter, Prepared, Publisher, Routed, STOP_PATIENCE};
use crate::{BoxFuture, BuildContext, Stopping};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NatsOutputConfig {
    urls: Vec<String>,
    #[serde(default)]
    auth: Auth,
    #[serde(default)]
    tls: Tls,
    subject: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    metadata: MetadataFilter,
}

struct NatsOutput {
    publisher: Publisher<async_nats::Client>,
}

pub(super) fn build(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Output>, ComponentError> {
    let parsed: NatsOutputConfig = config.parse()?;
    let route = (parsed.subject, parsed.headers, parsed.metadata);
    let publisher = Publisher::new((parsed.urls, parsed.auth, parsed.tls), route, config, cx)?;
    Ok(Box::new(NatsOutput { publisher }))
}

impl Output for NatsOutput {
    fn start(&mut self, stopping: Stopping) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let client = self.publisher.connect().await?;
            self.publisher.start(client, stopping);
            Ok(())
        })
    }

    fn write<'a>(
        &'a mut self,
        batch: &'a [Message],
    ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
        Box::pin(async move {
            let Prepared {
                ready,
                mut rejected,
                client,
                stopping,
                ..
            } = self.publisher.prepare(batch, Ok)?;
            let sent = async {
                for Routed {
                    index,
                    message,
                    subject,
                    headers,
                } in ready
                {
                    match client
                        .publish_with_headers(subject.clone(), headers, message.bytes.clone())
                        .await
                    {
                        Ok(()) => {}
                        Err(error) if error.kind() == PublishErrorKind::Send => {
                            return Err(format!("cannot publish to {subject}: {error}"));
                        }
                        // Over max_payload, or a subject the client refuses:
                        // never sent, whatever the wait.
                        Err(error) => rejected.push(Rejected {
                            index,
                            error: format!("cannot publish to {subject}: {error}"),
                        }),
                    }
                }
                client
                    .flush()
                    .await
                    .map_err(|e| format!("cannot flush to the NATS server: {e}"))?;
                Ok(rejected)
            };
            stopping.bounded(STOP_PATIENCE, sent).await.unwrap_or_else(|| {
                Err(format!(
                    "the NATS server did not take the batch within {}s of the pipeline stopping",
                    STOP_PATIENCE.as_secs()
                ))
            })
        })
    }
}
