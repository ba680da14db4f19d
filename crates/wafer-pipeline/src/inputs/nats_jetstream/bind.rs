//! The input's consumer on the server: bound as it is, a shared durable
//! taken as the server has it (its differences from the config logged),
//! or created from the config.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::{self, PullConsumer, pull};
use async_nats::jetstream::context::{ConsumerInfoError, ConsumerInfoErrorKind};
use wafer_nats::async_nats;

use super::JetStreamInput;

impl JetStreamInput {
    /// The consumer: bound as it is, an existing durable as the server
    /// has it (its differences from the config logged), or created from
    /// the config; the stream created first when `create_stream` says so.
    pub(super) async fn consumer(
        &self,
        jetstream: &jetstream::Context,
    ) -> Result<PullConsumer, String> {
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
        if let Some(durable) = self.consumer.durable_name.as_deref() {
            let not_found = |e: &async_nats::Error| {
                e.downcast_ref::<ConsumerInfoError>()
                    .is_some_and(|e| e.kind() == ConsumerInfoErrorKind::NotFound)
            };
            match stream.get_consumer::<pull::Config>(durable).await {
                Ok(existing) => {
                    if !self.bind {
                        self.warn_differences(durable, &existing.cached_info().config);
                    }
                    return Ok(existing);
                }
                Err(e) if self.bind || !not_found(&e) => {
                    let doing = if self.bind { "bind" } else { "read" };
                    return Err(format!(
                        "cannot {doing} consumer {durable} of stream {stream_name}: {e}"
                    ));
                }
                // Missing: created below. Two processes creating it at
                // the same instant with different fields leave the last
                // one's.
                Err(_) => {}
            }
        }
        stream
            .create_consumer(self.consumer.clone())
            .await
            .map_err(|e| format!("cannot create the consumer of stream {stream_name}: {e}"))
    }

    /// Logs each field in which the shared consumer `name` differs from
    /// this config: the server's is followed.
    fn warn_differences(&self, name: &str, server: &consumer::Config) {
        for Difference {
            field,
            ours,
            server,
        } in differences(&self.consumer, server)
        {
            tracing::warn!(
                component = %self.link.component(),
                consumer = %name,
                field,
                "The shared consumer {name} has {field} {server}, this config {ours}: following the server's (to change it, edit the consumer on the server, e.g. `nats consumer edit`, then restart the processes)."
            );
        }
    }
}

/// A field in which a consumer on the server differs from the config.
#[derive(Debug, PartialEq, Eq)]
struct Difference {
    /// The field, as the config names it (`backoff`: the server's own).
    field: &'static str,
    /// The config's value, as the log shows it.
    ours: String,
    /// The server's.
    server: String,
}

/// The fields that decide how messages are delivered in which `ours`
/// (the config) and `server` differ.
fn differences(ours: &pull::Config, server: &consumer::Config) -> Vec<Difference> {
    let limit = |n: i64| {
        if n > 0 {
            n.to_string()
        } else {
            "none".to_string()
        }
    };
    let subject = |s: &str| {
        if s.is_empty() {
            "none (the whole stream)".to_string()
        } else {
            s.to_string()
        }
    };
    let durations = |steps: &[Duration]| {
        if steps.is_empty() {
            "none".to_string()
        } else {
            format!("{steps:?}")
        }
    };
    [
        (
            "max_deliver",
            limit(ours.max_deliver),
            limit(server.max_deliver),
        ),
        (
            "ack_wait",
            format!("{:?}", ours.ack_wait),
            format!("{:?}", server.ack_wait),
        ),
        (
            "max_ack_pending",
            limit(ours.max_ack_pending),
            limit(server.max_ack_pending),
        ),
        (
            "subject",
            subject(&ours.filter_subject),
            subject(&server.filter_subject),
        ),
        (
            "backoff",
            durations(&ours.backoff),
            durations(&server.backoff),
        ),
    ]
    .into_iter()
    .filter(|(_, ours, server)| ours != server)
    .map(|(field, ours, server)| Difference {
        field,
        ours,
        server,
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_nats::jetstream::consumer::{DeliverPolicy, IntoConsumerConfig};

    use super::*;

    #[test]
    fn a_shared_consumer_s_differences_name_each_field_that_matters() {
        let ours = pull::Config {
            durable_name: Some("workers".into()),
            filter_subject: "in.>".into(),
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 1024,
            max_deliver: 3,
            ..Default::default()
        };
        let same = consumer::Config {
            // Not one of the fields compared.
            deliver_policy: DeliverPolicy::New,
            ..ours.clone().into_consumer_config()
        };
        assert_eq!(differences(&ours, &same), []);
        let server = consumer::Config {
            filter_subject: String::new(),
            ack_wait: Duration::from_secs(10),
            max_ack_pending: 32,
            max_deliver: -1,
            backoff: vec![Duration::from_secs(1), Duration::from_secs(5)],
            ..same
        };
        let found = differences(&ours, &server);
        let fields: Vec<&str> = found.iter().map(|d| d.field).collect();
        assert_eq!(
            fields,
            [
                "max_deliver",
                "ack_wait",
                "max_ack_pending",
                "subject",
                "backoff"
            ]
        );
        assert_eq!(
            found[0],
            Difference {
                field: "max_deliver",
                ours: "3".into(),
                server: "none".into()
            }
        );
        assert_eq!(
            (found[1].ours.as_str(), found[1].server.as_str()),
            ("30s", "10s")
        );
        assert_eq!(found[4].server, "[1s, 5s]");
    }
}
