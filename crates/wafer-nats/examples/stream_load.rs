//! The JetStream pipeline benchmark's driver (benches/jetstream_pipeline/
//! run.sh): it makes the streams afresh, fills stream IN, then times the
//! consumers the script starts meanwhile as they move IN into OUT.
//!
//! 1. Streams IN (subjects `in.>`) and OUT (`out.>`), file-backed, are
//!    deleted if there and created again; OUT de-duplicates by
//!    `Nats-Msg-Id` over its default window (2 minutes).
//! 2. N messages of 100 bytes are published to `in.bench`, up to 1024
//!    acknowledgements awaited at once; then it prints `loaded` on
//!    stderr.
//! 3. It polls consumer DURABLE of IN every 5 ms. The clock starts at the
//!    first poll that sees a message delivered and stops at the first
//!    that sees all N acknowledged (its ack floor at N): every message
//!    was published to OUT, acknowledged there, then acknowledged in IN.
//!    The messages acknowledged before the clock started are not counted.
//! 4. It checks that OUT holds exactly N messages and prints the rate,
//!    `messages/s seconds`, on one line.
//!
//! `stream_load URL N DURABLE`

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use futures_util::{StreamExt, TryStreamExt};

/// The size of each message.
const PAYLOAD: usize = 100;

/// How long the consumers may go without acknowledging anything (from
/// the end of the loading on).
const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> Result<(), async_nats::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, n, durable] = args.as_slice() else {
        return Err("usage: stream_load URL N DURABLE".into());
    };
    let n: u64 = n.parse()?;
    let jetstream = jetstream::new(async_nats::connect(url.as_str()).await?);
    for (name, subjects) in [("IN", "in.>"), ("OUT", "out.>")] {
        // Absent in the first round.
        let _ = jetstream.delete_stream(name).await;
        jetstream
            .create_stream(stream::Config {
                name: name.to_string(),
                subjects: vec![subjects.to_string()],
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await?;
    }
    futures_util::stream::iter(0..n)
        .map(|i| {
            let jetstream = &jetstream;
            async move {
                let payload = format!("{i:0>PAYLOAD$}");
                jetstream.publish("in.bench", payload.into()).await?.await?;
                Ok::<_, async_nats::Error>(())
            }
        })
        .buffer_unordered(1024)
        .try_collect::<()>()
        .await?;
    eprintln!("loaded");

    let input = jetstream.get_stream("IN").await?;
    let mut started: Option<(Instant, u64)> = None;
    let mut progress = (Instant::now(), 0);
    let finished = loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        // The consumer appears once the first consumer process is up.
        let Ok(info) = input.consumer_info(durable).await else {
            continue;
        };
        let now = Instant::now();
        let acknowledged = info.ack_floor.stream_sequence;
        if started.is_none() && info.delivered.stream_sequence > 0 {
            started = Some((now, acknowledged));
        }
        if acknowledged >= n {
            break now;
        }
        if acknowledged > progress.1 {
            progress = (now, acknowledged);
        } else if now - progress.0 > PATIENCE {
            return Err(format!("stuck at {acknowledged} of {n} acknowledged").into());
        }
    };
    let (start, before) = started.expect("delivered before all were acknowledged");
    let seconds = (finished - start).as_secs_f64();
    let written = jetstream
        .get_stream("OUT")
        .await?
        .get_info()
        .await?
        .state
        .messages;
    if written != n {
        return Err(format!("OUT holds {written} messages, not {n}").into());
    }
    println!("{:.0} {seconds:.2}", (n - before) as f64 / seconds);
    Ok(())
}
