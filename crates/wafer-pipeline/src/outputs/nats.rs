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
//! `nats_jetstream`; `metadata` picks the metadata sent as headers.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use wafer::Message;
use wafer_nats::async_nats;
use wafer_nats::{Auth, Tls};

use super::Output;
use crate::config::{ComponentConfig, ComponentError};
use crate::nats::{Link, MetadataFilter, Routing};
use crate::{BoxFuture, BuildContext};

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
    runtime: Arc<wafer::Runtime>,
    link: Link,
    routing: Routing,
    /// Connected at the first write.
    client: Option<async_nats::Client>,
}

pub(super) fn build(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Output>, ComponentError> {
    let parsed: NatsOutputConfig = config.parse()?;
    let link = Link::new((parsed.urls, parsed.auth, parsed.tls), config, cx)?;
    let routing = Routing::new(&parsed.subject, &parsed.headers, parsed.metadata)?;
    Ok(Box::new(NatsOutput {
        runtime: cx.runtime.clone(),
        link,
        routing,
        client: None,
    }))
}

impl Output for NatsOutput {
    fn write<'a>(&'a mut self, batch: &'a [Message]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if self.client.is_none() {
                self.client = Some(self.link.connect(&self.runtime).await?);
            }
            let client = self.client.as_ref().expect("connected above");
            for message in batch {
                let (subject, headers) = self.routing.route(message)?;
                client
                    .publish_with_headers(subject.clone(), headers, message.bytes.clone())
                    .await
                    .map_err(|e| format!("cannot publish to {subject}: {e}"))?;
            }
            client
                .flush()
                .await
                .map_err(|e| format!("cannot flush to the NATS server: {e}"))
        })
    }
}
