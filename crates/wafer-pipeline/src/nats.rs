//! What the NATS components (`nats`, `nats_jetstream`, inputs and
//! outputs) share: their connection fields, the stream an input or
//! output may create, which metadata an output sends as headers, and how
//! an output connects and routes a batch ([`Publisher`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use serde::Deserialize;
use wafer_nats::async_nats;
use wafer_nats::{Auth, Connect, Tls};

use crate::config::duration::GoDuration;
use crate::config::interpolation::Template;
use crate::config::{ComponentConfig, ComponentError};
use crate::outputs::Rejected;
use crate::{BuildContext, Stopping};

/// How long an output keeps trying to write a batch (a broker that is
/// away, a stream that is missing) once the pipeline stops: then it fails
/// the batch, which is not acknowledged and is delivered again, so that
/// Ctrl-C ends the run.
pub(crate) const STOP_PATIENCE: Duration = Duration::from_secs(10);

/// What an output answers a write before [`crate::outputs::Output::start`]
/// (a bug: the engine starts every output first).
const NOT_STARTED: &str = "written to before the run started it";

/// A component's checked connection, and how it is named in logs and
/// metrics (`pipeline NAME input`).
pub(crate) struct Link {
    connect: Connect,
    component: String,
    /// Where its state is registered: not the runtime, which a pipeline
    /// that outlives reloads would keep alive.
    connections: wafer::metrics::Connections,
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
            connections: cx.runtime.connection_registry(),
        })
    }

    /// Connects, registering the connection's state in the runtime's
    /// metrics (and its successors').
    pub(crate) async fn connect(&self) -> Result<async_nats::Client, String> {
        let state = self.connections.register("nats", &self.component);
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

/// What a NATS output is built on: its checked connection, where each
/// message goes ([`Routing`]), and, from the start of the run, the client
/// `C` it publishes through (a core client, a JetStream context) with the
/// pipeline's stop signal.
pub(crate) struct Publisher<C> {
    link: Link,
    routing: Routing,
    started: Option<(C, Stopping)>,
}

/// A message of a batch that [`Routing`] could route.
pub(crate) struct Routed<'m> {
    /// Its index in the batch.
    pub index: usize,
    pub message: &'m wafer::Message,
    pub subject: String,
    pub headers: async_nats::HeaderMap,
}

/// A batch ready to publish ([`Publisher::prepare`]).
pub(crate) struct Prepared<'a, C, T> {
    /// What was made of each message that can be published, in batch
    /// order.
    pub ready: Vec<T>,
    /// The messages that cannot be, with why.
    pub rejected: Vec<Rejected>,
    /// The client to publish through.
    pub client: &'a C,
    /// The pipeline's stop signal, to bound the waits with
    /// ([`STOP_PATIENCE`]).
    pub stopping: &'a mut Stopping,
    /// The output, as logs name it.
    pub component: &'a str,
}

impl<C> Publisher<C> {
    /// Checks `urls`, `auth` and `tls` (`connection`), and `subject`,
    /// `headers` and `metadata` (`route`), of `config`'s output.
    pub(crate) fn new(
        connection: (Vec<String>, Auth, Tls),
        route: (String, BTreeMap<String, String>, MetadataFilter),
        config: &ComponentConfig,
        cx: &BuildContext<'_>,
    ) -> Result<Publisher<C>, ComponentError> {
        let link = Link::new(connection, config, cx)?;
        let (subject, headers, metadata) = route;
        let routing = Routing::new(&subject, &headers, metadata, link.component())?;
        Ok(Publisher {
            link,
            routing,
            started: None,
        })
    }

    /// Connects, as the run starts ([`Link::connect`]).
    pub(crate) async fn connect(&self) -> Result<async_nats::Client, String> {
        self.link.connect().await
    }

    /// Keeps `client`, made from [`Publisher::connect`]'s connection, to
    /// publish through for the rest of the run.
    pub(crate) fn start(&mut self, client: C, stopping: Stopping) {
        self.started = Some((client, stopping));
    }

    /// `message`, at `index` in its batch, routed.
    ///
    /// # Errors
    ///
    /// Why it cannot be sent ([`Routing::route`]).
    pub(crate) fn route<'m>(
        &self,
        index: usize,
        message: &'m wafer::Message,
    ) -> Result<Routed<'m>, String> {
        let (subject, headers) = self.routing.route(message)?;
        Ok(Routed {
            index,
            message,
            subject,
            headers,
        })
    }

    /// `batch` routed, and what `make` makes of each routed message; a
    /// message that cannot be routed, or that `make` refuses, is rejected
    /// with why, and the rest of the batch is still prepared.
    ///
    /// # Errors
    ///
    /// The run did not start the output ([`Publisher::start`]).
    pub(crate) fn prepare<'m, T>(
        &mut self,
        batch: &'m [wafer::Message],
        mut make: impl FnMut(Routed<'m>) -> Result<T, String>,
    ) -> Result<Prepared<'_, C, T>, String> {
        let mut ready = Vec::with_capacity(batch.len());
        let mut rejected = Vec::new();
        for (index, message) in batch.iter().enumerate() {
            match self.route(index, message).and_then(&mut make) {
                Ok(made) => ready.push(made),
                Err(error) => rejected.push(Rejected { index, error }),
            }
        }
        let Some((client, stopping)) = &mut self.started else {
            return Err(NOT_STARTED.to_string());
        };
        Ok(Prepared {
            ready,
            rejected,
            client,
            stopping,
            component: self.link.component(),
        })
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
///
/// A header NATS cannot carry is left out of the message, which is sent
/// without it: a name that is empty or holds a `:`, a space or a control
/// character, a value that holds a line break (metadata a guest set may
/// hold anything), or a `headers` value naming metadata the message does
/// not have. The first one left out is logged at warning level, naming
/// its key; later ones at debug level.
pub(crate) struct Routing {
    /// The `subject` field as written, for errors.
    subject_text: String,
    subject: Template,
    headers: Vec<(async_nats::HeaderName, Template)>,
    metadata: MetadataFilter,
    /// The component, as logs name it.
    component: String,
    /// Whether a header was left out yet.
    left_out: AtomicBool,
}

impl Routing {
    /// Parses the `subject` and `headers` templates, and checks what can
    /// be checked before any message: a literal subject, the header
    /// names, literal header values.
    pub(crate) fn new(
        subject: &str,
        headers: &BTreeMap<String, String>,
        metadata: MetadataFilter,
        component: &str,
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
            .map(|(name, value)| {
                let field = format!("headers.{name}");
                let template = parse(&field, value)?;
                let name = header_name(name).map_err(|e| ComponentError::invalid(&field, e))?;
                if template.is_literal() {
                    header_value(value).map_err(|e| ComponentError::invalid(&field, e))?;
                }
                Ok((name, template))
            })
            .collect::<Result<_, ComponentError>>()?;
        Ok(Routing {
            subject_text: subject.to_string(),
            subject: template,
            headers,
            metadata,
            component: component.to_string(),
            left_out: AtomicBool::new(false),
        })
    }

    /// The subject and headers of `message`; a header NATS cannot carry
    /// is left out.
    ///
    /// # Errors
    ///
    /// The subject names metadata the message does not have, or comes out
    /// empty or invalid: the message cannot be sent.
    pub(crate) fn route(
        &self,
        message: &wafer::Message,
    ) -> Result<(String, async_nats::HeaderMap), String> {
        let subject = self
            .subject
            .render(message)
            .map_err(|e| format!("subject `{}`: {e}", self.subject_text))?;
        check_subject(&subject)?;
        let mut headers = async_nats::HeaderMap::new();
        for (key, value) in self.metadata.picked(message) {
            match header_name(key).and_then(|name| Ok((name, header_value(value)?))) {
                Ok((name, value)) => headers.insert(name, value),
                Err(error) => self.leave_out(key, &error),
            }
        }
        for (name, template) in &self.headers {
            match template
                .render(message)
                .and_then(|value| header_value(&value))
            {
                Ok(value) => headers.insert(name.clone(), value),
                Err(error) => self.leave_out(AsRef::<str>::as_ref(name), &error),
            }
        }
        Ok((subject, headers))
    }

    /// Logs a header left out: the first at warning level.
    fn leave_out(&self, key: &str, error: &str) {
        if !self.left_out.swap(true, Ordering::Relaxed) {
            tracing::warn!(component = %self.component, key, %error, "A header NATS cannot carry was left out of a message, which is sent without it (later ones are logged at debug level).");
        } else {
            tracing::debug!(component = %self.component, key, %error, "A header was left out of a message.");
        }
    }
}

/// `name` as a NATS header name: not empty, printable ASCII without `:`.
pub(crate) fn header_name(name: &str) -> Result<async_nats::HeaderName, String> {
    let refused =
        || format!("`{name}` cannot be a NATS header name (printable ASCII without `:` or spaces)");
    if name.is_empty() {
        return Err(refused());
    }
    name.parse().map_err(|_| refused())
}

/// `value` as a NATS header value: without line breaks.
pub(crate) fn header_value(value: &str) -> Result<async_nats::HeaderValue, String> {
    value
        .parse()
        .map_err(|_| "a NATS header value cannot hold a line break (\\r or \\n)".to_string())
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

    /// The message's metadata it sends.
    pub(crate) fn picked<'a>(
        &'a self,
        message: &'a wafer::Message,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let none = self.include_prefixes.is_empty() && self.include_patterns.is_empty();
        message
            .metadata
            .iter()
            .filter(move |(key, _)| !none && self.includes(key))
            .map(|(key, value)| (key.as_str(), value.as_str()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn routing(subject: &str, headers: &[(&str, &str)]) -> Result<Routing, String> {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let metadata: MetadataFilter =
            serde_json::from_value(serde_json::json!({"include_patterns": [".*"]})).unwrap();
        Routing::new(subject, &headers, metadata, "test")
            .map_err(|e| format!("{}: {}", e.field, e.message))
    }

    #[test]
    fn a_header_nats_cannot_carry_is_left_out_and_never_panics() {
        let routing = routing(
            r#"out.${! meta("kind") }"#,
            &[("Source", "wafer"), ("Trace", "${! @trace }")],
        )
        .unwrap();
        let message = wafer::Message::new("x")
            .with_meta("kind", "a")
            .with_meta("fine", "yes")
            .with_meta("multi", "two\nlines")
            .with_meta("carriage", "a\rb")
            .with_meta("a:b", "colon in the name")
            .with_meta("with space", "x")
            .with_meta("", "no name");
        let (subject, headers) = routing.route(&message).unwrap();
        assert_eq!(subject, "out.a");
        let mut names: Vec<String> = headers.iter().map(|(name, _)| name.to_string()).collect();
        names.sort();
        // `Trace` names metadata the message lacks: left out too.
        assert_eq!(names, ["Source", "fine", "kind"]);
        assert_eq!(headers.get("fine").unwrap().as_str(), "yes");
    }

    #[test]
    fn a_subject_that_cannot_be_made_is_an_error_naming_why() {
        let routing = routing(r#"out.${! meta("kind") }"#, &[]).unwrap();
        let missing = routing.route(&wafer::Message::new("x")).unwrap_err();
        assert!(missing.contains("`kind`"), "{missing}");
        for kind in ["", "a b", "two\nlines", "*", "a..b"] {
            let message = wafer::Message::new("x").with_meta("kind", kind);
            assert!(routing.route(&message).is_err(), "{kind:?}");
        }
    }

    #[test]
    fn header_names_and_literal_values_are_checked_at_build() {
        let bad_name = routing("out", &[("Bad:Name", "x")]).err().unwrap();
        assert!(bad_name.contains("headers.Bad:Name"), "{bad_name}");
        let bad_value = routing("out", &[("Name", "two\nlines")]).err().unwrap();
        assert!(bad_value.contains("line break"), "{bad_value}");
        assert!(routing("out.", &[]).is_err());
    }
}
