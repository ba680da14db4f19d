//! `generate`: the same message `count` times (0: without end), one every
//! `interval` (empty or `0s`: as fast as the pipeline takes them).
//!
//! Its `mapping` is a Bloblang *literal* assignment, `root = "text"` or
//! `root = {"a": 1}`: a string becomes the message as it is, any other
//! value its JSON. Other Bloblang is not supported.

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use wafer::Message;

use super::{Input, MAX_BATCH};
use crate::config::duration::parse_duration;
use crate::config::{ComponentConfig, ComponentError};
use crate::{BoxFuture, BuildContext, Sink};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateConfig {
    mapping: String,
    #[serde(default)]
    count: u64,
    /// Benthos' default: one message a second.
    #[serde(default = "default_interval")]
    interval: String,
    #[serde(default = "default_batch_size")]
    batch_size: usize,
}

fn default_interval() -> String {
    "1s".into()
}

fn default_batch_size() -> usize {
    1
}

struct Generate {
    content: Bytes,
    count: u64,
    interval: Option<Duration>,
    batch_size: usize,
}

pub(super) fn build(
    config: &ComponentConfig,
    _: &BuildContext<'_>,
) -> Result<Box<dyn Input>, ComponentError> {
    let parsed: GenerateConfig = config.parse()?;
    let content =
        literal_mapping(&parsed.mapping).map_err(|e| ComponentError::invalid("mapping", e))?;
    let interval =
        parse_duration(&parsed.interval).map_err(|e| ComponentError::invalid("interval", e))?;
    if parsed.batch_size == 0 {
        return Err(ComponentError::invalid("batch_size", "at least 1"));
    }
    Ok(Box::new(Generate {
        content,
        count: parsed.count,
        interval: interval.filter(|d| !d.is_zero()),
        batch_size: parsed.batch_size,
    }))
}

/// The message a literal mapping makes.
fn literal_mapping(mapping: &str) -> Result<Bytes, String> {
    let unsupported = || {
        format!(
            "wafer supports only literal mappings (`root = \"text\"`, `root = {{\"a\": 1}}`), not `{}`: other Bloblang is not supported",
            mapping.trim()
        )
    };
    let literal = mapping
        .trim()
        .strip_prefix("root")
        .map(str::trim_start)
        .and_then(|rest| rest.strip_prefix('='))
        .ok_or_else(unsupported)?;
    match serde_json::from_str::<serde_json::Value>(literal.trim()) {
        Ok(serde_json::Value::String(text)) => Ok(Bytes::from(text)),
        Ok(value) => Ok(Bytes::from(value.to_string())),
        Err(_) => Err(unsupported()),
    }
}

impl Input for Generate {
    fn run(self: Box<Self>, mut sink: Sink) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            let mut ticks = self.interval.map(tokio::time::interval);
            // Without an interval, messages go in batches as large as pays.
            let per_batch = match ticks {
                Some(_) => self.batch_size,
                None => self.batch_size.max(MAX_BATCH),
            } as u64;
            let mut left = self.count;
            loop {
                let n = if self.count == 0 {
                    per_batch
                } else {
                    per_batch.min(left)
                };
                if n == 0 {
                    return Ok(());
                }
                if let Some(ticks) = &mut ticks {
                    ticks.tick().await;
                }
                // One clock read a batch: they are made at the same moment.
                let now = std::time::SystemTime::now();
                let batch = (0..n)
                    .map(|_| Message {
                        bytes: self.content.clone(),
                        metadata: Default::default(),
                        timestamp: now,
                        error: None,
                    })
                    .collect();
                if sink.send(batch).await.is_err() {
                    return Ok(());
                }
                left = left.saturating_sub(n);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_mappings_make_their_message() {
        assert_eq!(literal_mapping(r#"root = "hello""#).unwrap(), "hello");
        assert_eq!(literal_mapping(r#"root = {"a": 1}"#).unwrap(), r#"{"a":1}"#);
        assert_eq!(literal_mapping("root=42").unwrap(), "42");
        let refused = literal_mapping("root = this.foo.uppercase()").unwrap_err();
        assert!(refused.contains("this.foo.uppercase()"), "{refused}");
        assert!(literal_mapping(r#"root.a = "x""#).is_err());
    }
}
