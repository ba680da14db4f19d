//! What the NATS components (`nats`, `nats_jetstream`, inputs and
//! outputs) share: their connection fields, the stream an input or
//! output may create, and which metadata an output sends as headers.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_nats::jetstream;
use serde::Deserialize;
use wafer_nats::async_nats;
use wafer_nats::{Auth, Connect, Tls};

use crate::BuildContext;
use crate::config::duration::GoDuration;
use crate::config::interpolation::Template;
use crate::config::{ComponentConfig, ComponentError};

/// A component's checked connection, and how it is named in logs and
/// metrics (`pipeline NAME input`).
pub(crate) struct Link {
    connect: Connect,
    component: String,
}

impl Link {
    /// Checks `urls`, `auth` and `tls` of `config`'s component.
    pub(crate) fn new(
        fields: (Vec<String>, Auth, Tls),
        config: &ComponentConfig,
        cx: &BuildContext<'_>,
    ) -> Result<Link, ComponentError> {
        let (urls, auth, tls) = fields;
        let connect = Connect::new(&urls, auth, tls, cx.base_dir)
            .map_err(|e| ComponentError::invalid(&e.field, e.message))?;
        Ok(Link {
            connect,
            component: format!("pipeline {} {}", cx.pipeline, config.name()),
        })
    }

    /// Connects, registering the connection's state in `runtime`'s
    /// metrics.
    pub(crate) async fn connect(
        &self,
        runtime: &Arc<wafer::Runtime>,
    ) -> Result<async_nats::Client, String> {
        let state = runtime.connection("nats", &self.component);
        self.connect
            .connect(&format!("wafer {}", self.component), state)
            .await
    }

    /// The component, as logs name it.
    pub(crate) fn component(&self) -> &str {
        &self.component
    }

    /// The servers, as a log line names them.
    pub(crate) fn servers(&self) -> String {
        self.connect.describe()
    }
}

/// A stream an input or output creates when it is missing
/// (`create_stream`): file storage, and the other limits at the server's
/// defaults unless given. An existing stream is used as it is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamSpec {
    /// The subjects it holds.
    pub subjects: Vec<String>,
    /// `file` (the default) or `memory`.
    #[serde(default)]
    pub storage: Storage,
    /// How long a `Nats-Msg-Id` is remembered (the server's default: 2m).
    pub duplicate_window: Option<GoDuration>,
    /// How long a message is kept (default: for ever).
    pub max_age: Option<GoDuration>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Storage {
    #[default]
    File,
    Memory,
}

impl StreamSpec {
    /// Creates stream `name` unless it exists.
    pub(crate) async fn ensure(
        &self,
        jetstream: &jetstream::Context,
        name: &str,
    ) -> Result<(), String> {
        let mut config = jetstream::stream::Config {
            name: name.to_string(),
            subjects: self.subjects.clone(),
            storage: match self.storage {
                Storage::File => jetstream::stream::StorageType::File,
                Storage::Memory => jetstream::stream::StorageType::Memory,
            },
            ..Default::default()
        };
        if let Some(window) = self.duplicate_window {
            config.duplicate_window = window.0;
        }
        if let Some(age) = self.max_age {
            config.max_age = age.0;
        }
        jetstream
            .get_or_create_stream(config)
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot create stream {name}: {e}"))
    }
}

/// Where an output sends a message and the headers it adds: `subject`
/// and `headers` values interpolated from the message's metadata, and
/// the metadata `metadata` picks.
pub(crate) struct Routing {
    subject: Template,
    headers: Vec<(String, Template)>,
    metadata: MetadataFilter,
}

impl Routing {
    /// Parses the `subject` and `headers` templates.
    pub(crate) fn new(
        subject: &str,
        headers: &BTreeMap<String, String>,
        metadata: MetadataFilter,
    ) -> Result<Routing, ComponentError> {
        let parse = |field: &str, text: &str| {
            Template::parse(text).map_err(|e| ComponentError::invalid(field, e))
        };
        let template = parse("subject", subject)?;
        if template.is_literal() {
            check_subject(subject).map_err(|e| ComponentError::invalid("subject", e))?;
        }
        let headers = headers
            .iter()
            .map(|(name, value)| Ok((name.clone(), parse(&format!("headers.{name}"), value)?)))
            .collect::<Result<_, ComponentError>>()?;
        Ok(Routing {
            subject: template,
            headers,
            metadata,
        })
    }

    /// The subject and headers of `message`.
    pub(crate) fn route(
        &self,
        message: &wafer::Message,
    ) -> Result<(String, async_nats::HeaderMap), String> {
        let subject = self.subject.render(message)?;
        check_subject(&subject)?;
        let mut headers = async_nats::HeaderMap::new();
        self.metadata.add_to(message, &mut headers);
        for (name, value) in &self.headers {
            headers.insert(name.as_str(), value.render(message)?.as_str());
        }
        Ok((subject, headers))
    }
}

/// Which metadata an output sends as headers (`metadata`), as in
/// Benthos: keys with one of `include_prefixes`, or matching one of
/// `include_patterns` (regular expressions); none by default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetadataFilter {
    #[serde(default)]
    include_prefixes: Vec<String>,
    #[serde(default, with = "patterns")]
    include_patterns: Vec<regex::Regex>,
}

impl MetadataFilter {
    /// Whether `key` is sent.
    pub(crate) fn includes(&self, key: &str) -> bool {
        self.include_prefixes
            .iter()
            .any(|p| key.starts_with(p.as_str()))
            || self.include_patterns.iter().any(|p| p.is_match(key))
    }

    /// The message's metadata it sends, added to `headers`.
    pub(crate) fn add_to(&self, message: &wafer::Message, headers: &mut async_nats::HeaderMap) {
        if self.include_prefixes.is_empty() && self.include_patterns.is_empty() {
            return;
        }
        for (key, value) in &message.metadata {
            if self.includes(key) {
                headers.insert(key.as_str(), value.as_str());
            }
        }
    }
}

mod patterns {
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<regex::Regex>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|p| regex::Regex::new(p).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// Checks a subject to publish to: dot-separated tokens, none empty,
/// without spaces or wildcards.
pub(crate) fn check_subject(subject: &str) -> Result<(), String> {
    let valid = !subject.is_empty()
        && subject.split('.').all(|token| {
            !token.is_empty()
                && token != "*"
                && token != ">"
                && !token.contains(char::is_whitespace)
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{subject}` is not a subject to publish to (dot-separated tokens, none empty, no spaces or wildcards)"
        ))
    }
}

/// A message's headers as metadata (the first value of each), beside
/// what the input adds itself.
pub(crate) fn headers_to_metadata(
    headers: Option<&async_nats::HeaderMap>,
    metadata: &mut wafer::Metadata,
) {
    let Some(headers) = headers else { return };
    for (name, values) in headers.iter() {
        if let Some(value) = values.first() {
            metadata.insert(name.to_string(), value.to_string());
        }
    }
}
