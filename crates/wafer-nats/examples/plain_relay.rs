//! A plain async-nats relay from one JetStream stream to a subject of
//! another, with no processing: what a wafer pipeline `nats_jetstream` →
//! Benthos-ABI processor → `nats_jetstream` is measured against
//! (benches/jetstream_pipeline/run.sh).
//!
//! It takes the messages of STREAM through the durable pull consumer
//! DURABLE (created, explicit acknowledgements, at most 1024 pending as
//! in wafer's input by default) and publishes each to SUBJECT with the
//! `Nats-Msg-Id` wafer's output would give it (`STREAM.DURABLE.SEQUENCE`, so that
//! the output stream de-duplicates the same way); once the server
//! acknowledged the publish, it acknowledges the input. Up to 1024
//! messages are in flight at once, each on its own: publishes leave as
//! messages arrive and each input is acknowledged as soon as its own
//! publish is.
//!
//! `plain_relay URL STREAM DURABLE SUBJECT`; it prints `ready` on stderr
//! once consuming, and runs until killed (or a failure).

use async_nats::jetstream::consumer::pull::MessagesError;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, Message};
use futures_util::{StreamExt, TryStreamExt};

/// How many messages the relay holds at once: unacknowledged by the
/// consumer, publishes waiting for their acknowledgement.
const IN_FLIGHT: usize = 1024;

#[tokio::main]
async fn main() -> Result<(), async_nats::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, stream, durable, subject] = args.as_slice() else {
        return Err("usage: plain_relay URL STREAM DURABLE SUBJECT".into());
    };
    let jetstream = jetstream::new(async_nats::connect(url.as_str()).await?);
    let consumer: PullConsumer = jetstream
        .get_stream(stream)
        .await?
        .create_consumer(pull::Config {
            durable_name: Some(durable.clone()),
            ack_policy: AckPolicy::Explicit,
            max_ack_pending: IN_FLIGHT as i64,
            ..Default::default()
        })
        .await?;
    let messages = consumer.messages().await?;
    eprintln!("ready");
    messages
        .map(|message| relay(&jetstream, subject, message))
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await
}

/// Publishes one message to `subject`, waits for the server's
/// acknowledgement, then acknowledges the message to its consumer.
async fn relay(
    jetstream: &jetstream::Context,
    subject: &str,
    message: Result<Message, MessagesError>,
) -> Result<(), async_nats::Error> {
    let message = message?;
    let info = message.info()?;
    let id = format!("{}.{}.{}", info.stream, info.consumer, info.stream_sequence);
    let publish = PublishMessage::build()
        .payload(message.payload.clone())
        .message_id(id);
    jetstream
        .send_publish(subject.to_string(), publish)
        .await?
        .await?;
    message.ack().await
}
