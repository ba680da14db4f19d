//! `broker`: Benthos' `broker` output with its `fan_out` pattern (the
//! default, and the only one wafer has): every output in `outputs` gets
//! the whole batch, all at once, and the batch is written once every one
//! of them wrote it. The first failure fails the write (after the others
//! finished theirs; the error names the output by its label, or by its
//! place, `output.broker.outputs[1]`): the pipeline then stops, and the
//! batch is not acknowledged. Unlike Benthos, which tries a failed output
//! again until it succeeds, the broker does not retry (Fluent Bit's
//! `fluentbit_http` and `fluentbit_file` retry on their own when they have
//! `retry_limit` or a scheduler field, and the batch waits for them). A message one of them
//! rejects on its own ([`Output::write`]) is rejected by the broker (the
//! others may have written it), and follows `on_error`. Starting starts,
//! and closing closes, every output.
//!
//! ```yaml
//! output:
//!   broker:
//!     pattern: fan_out
//!     outputs:
//!       - stdout: {}
//!       - file: {path: ./copy.txt}
//! ```
//!
//! An output in the list has a `label` if it likes, but no `processors`;
//! `copies` and `batching` are not supported.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use serde::Deserialize;
use serde_json::Value;
use wafer::ProblemKind;

use super::{Output, Rejected};
use crate::config::{ComponentConfig, ComponentError};
use crate::{BoxFuture, BuildContext, Stopping};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BrokerConfig {
    #[serde(default = "default_pattern")]
    pattern: String,
    outputs: Vec<Value>,
}

fn default_pattern() -> String {
    "fan_out".into()
}

struct Broker {
    outputs: Vec<Box<dyn Output>>,
    /// How errors name each output: its label, or its place.
    names: Vec<String>,
}

pub(super) fn build(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Output>, ComponentError> {
    let parsed: BrokerConfig = config.parse()?;
    if parsed.pattern != "fan_out" {
        return Err(ComponentError::invalid(
            "pattern",
            format!(
                "wafer's broker has the pattern fan_out only, not `{}`",
                parsed.pattern
            ),
        ));
    }
    if parsed.outputs.is_empty() {
        return Err(ComponentError::invalid(
            "outputs",
            "a broker needs at least one output",
        ));
    }
    let mut outputs = Vec::with_capacity(parsed.outputs.len());
    let mut names = Vec::with_capacity(parsed.outputs.len());
    for (i, value) in parsed.outputs.into_iter().enumerate() {
        let place = format!("outputs[{i}]");
        let child = child(config, &place, value)?;
        // The child's problems are named from the broker's fields.
        let output = super::build(&child, cx).map_err(|e| {
            let field = match e.field.as_str() {
                "" => format!("{place}.{}", child.kind),
                field => format!("{place}.{}.{field}", child.kind),
            };
            ComponentError::new(e.kind, &field, e.message)
        })?;
        outputs.push(output);
        names.push(child.name().to_string());
    }
    Ok(Box::new(Broker { outputs, names }))
}

/// The output at `outputs[i]` (`place`): a mapping with an optional
/// `label` and one key naming its type.
fn child(
    parent: &ComponentConfig,
    place: &str,
    value: Value,
) -> Result<ComponentConfig, ComponentError> {
    let Value::Object(mut map) = value else {
        return Err(ComponentError::invalid(
            place,
            "an output is a mapping with one key naming its type, like `stdout: {}`",
        ));
    };
    let label = match map.remove("label") {
        None | Some(Value::Null) => None,
        Some(Value::String(label)) if label.is_empty() => None,
        Some(Value::String(label)) => Some(label),
        Some(_) => {
            return Err(ComponentError::invalid(
                &format!("{place}.label"),
                "a label is a string",
            ));
        }
    };
    if map.contains_key("processors") {
        return Err(ComponentError::new(
            ProblemKind::UnknownField,
            &format!("{place}.processors"),
            "wafer does not support processors on a broker's outputs",
        ));
    }
    let mut types = map.into_iter();
    let (kind, body) = match (types.next(), types.next()) {
        (Some(only), None) => only,
        (None, _) => {
            return Err(ComponentError::new(
                ProblemKind::MissingField,
                place,
                "the output names no type (like `stdout: {}`)",
            ));
        }
        (Some((first, _)), Some((second, _))) => {
            return Err(ComponentError::invalid(
                place,
                format!("an output has one type, this one has `{first}` and `{second}`"),
            ));
        }
    };
    Ok(ComponentConfig {
        path: format!("{}.{}.{place}", parent.path, parent.kind),
        label,
        kind,
        body,
    })
}

/// Runs `futures` together; answers what each answered, in their order,
/// or the first error (after the name paired with it) once all of them
/// finished.
async fn all<T>(
    mut futures: Vec<BoxFuture<'_, Result<T, String>>>,
    names: &[String],
) -> Result<Vec<T>, String> {
    let mut results: Vec<Option<Result<T, String>>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, result) in futures.iter_mut().zip(results.iter_mut()) {
            if result.is_none() {
                match Pin::new(future).poll(cx) {
                    Poll::Ready(done) => *result = Some(done),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    results
        .into_iter()
        .flatten()
        .zip(names)
        .map(|(result, name)| result.map_err(|e| format!("{name}: {e}")))
        .collect()
}

impl Output for Broker {
    fn start(&mut self, stopping: Stopping) -> BoxFuture<'_, Result<(), String>> {
        let starts = self
            .outputs
            .iter_mut()
            .map(|o| o.start(stopping.clone()))
            .collect();
        let names = &self.names;
        Box::pin(async move { all(starts, names).await.map(|_| ()) })
    }

    fn write<'a>(
        &'a mut self,
        batch: &'a [wafer::Message],
    ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
        let writes = self.outputs.iter_mut().map(|o| o.write(batch)).collect();
        let names = &self.names;
        Box::pin(async move {
            let each = all(writes, names).await?;
            // The first output's reason for a message, when several
            // rejected it.
            let mut rejected: BTreeMap<usize, String> = BTreeMap::new();
            for (name, refused) in names.iter().zip(each) {
                for Rejected { index, error } in refused {
                    rejected
                        .entry(index)
                        .or_insert_with(|| format!("{name}: {error}"));
                }
            }
            Ok(rejected
                .into_iter()
                .map(|(index, error)| Rejected { index, error })
                .collect())
        })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), String>> {
        let closes = self.outputs.iter_mut().map(|o| o.close()).collect();
        let names = &self.names;
        Box::pin(async move { all(closes, names).await.map(|_| ()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output answering `result` to every write.
    struct Fixed(
        Result<Vec<Rejected>, String>,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    );

    impl Output for Fixed {
        fn write<'a>(
            &'a mut self,
            _: &'a [wafer::Message],
        ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let result = self.0.clone();
            Box::pin(async move {
                // Yields once, so that the writes are pending together.
                tokio::task::yield_now().await;
                result
            })
        }
    }

    fn rejected(index: usize, error: &str) -> Rejected {
        Rejected {
            index,
            error: error.to_string(),
        }
    }

    #[tokio::test]
    async fn every_output_writes_and_the_first_failure_is_the_answer() {
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let fixed = |result: Result<Vec<Rejected>, &str>| -> Box<dyn Output> {
            Box::new(Fixed(result.map_err(String::from), count.clone()))
        };
        let names = |n: usize| (0..n).map(|i| format!("out{i}")).collect();
        let mut broker = Broker {
            outputs: vec![fixed(Ok(vec![])), fixed(Err("first")), fixed(Err("second"))],
            names: names(3),
        };
        let batch = [wafer::Message::new("m"), wafer::Message::new("n")];
        assert_eq!(broker.write(&batch).await, Err("out1: first".to_string()));
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3);
        let mut fine = Broker {
            outputs: vec![fixed(Ok(vec![])), fixed(Ok(vec![]))],
            names: names(2),
        };
        assert_eq!(fine.write(&batch).await, Ok(vec![]));
        assert_eq!(fine.close().await, Ok(()));
        // A message rejected by any output is rejected, once, with the
        // reason of the first that rejected it.
        let mut picky = Broker {
            outputs: vec![
                fixed(Ok(vec![rejected(1, "too big")])),
                fixed(Ok(vec![rejected(0, "no subject"), rejected(1, "no")])),
            ],
            names: names(2),
        };
        assert_eq!(
            picky.write(&batch).await,
            Ok(vec![
                rejected(0, "out1: no subject"),
                rejected(1, "out0: too big")
            ])
        );
    }

    #[test]
    fn a_child_is_read_as_the_pipeline_reads_an_output() {
        let parent = ComponentConfig {
            path: "output".into(),
            label: None,
            kind: "broker".into(),
            body: Value::Null,
        };
        let child = child(
            &parent,
            "outputs[1]",
            serde_json::json!({"label": "copy", "file": {"path": "x"}}),
        )
        .unwrap();
        assert_eq!(child.path, "output.broker.outputs[1]");
        assert_eq!(child.label.as_deref(), Some("copy"));
        assert_eq!(child.kind, "file");
        let two = child_error(&parent, serde_json::json!({"stdout": {}, "file": {}}));
        assert!(
            two.contains("`file` and `stdout`") || two.contains("`stdout` and `file`"),
            "{two}"
        );
        let processors = child_error(&parent, serde_json::json!({"stdout": {}, "processors": []}));
        assert!(
            processors.starts_with("outputs[0].processors"),
            "{processors}"
        );
    }

    fn child_error(parent: &ComponentConfig, value: Value) -> String {
        let e = child(parent, "outputs[0]", value).unwrap_err();
        format!("{}: {}", e.field, e.message)
    }
}
