//! Settling what the input took: each batch reported in progress while
//! the pipeline holds it, then acknowledged, NAKed or terminated by its
//! outcome; and, when the input stops, its pull requests ended before
//! anything is settled.

use std::time::Duration;

use async_nats::jetstream::consumer::{self, PullConsumer};
use async_nats::jetstream::{self, AckKind};
use futures_util::FutureExt;
use tokio::sync::watch;
use tokio::time::Instant;
use wafer_nats::async_nats;

use crate::{Settled, Stopping, TrackedAck};

/// What acknowledges one message, and how many times it was delivered.
pub(super) struct Acker {
    pub acker: jetstream::message::Acker,
    pub delivered: i64,
}

/// How often a held message is reported in progress: half the shortest
/// wait after which the server would deliver it again (`ack_wait`, or a
/// step of its `backoff`), and not more often than every 100 ms.
pub(super) fn progress_every(config: &consumer::Config) -> Duration {
    let shortest = config
        .backoff
        .iter()
        .copied()
        .chain([config.ack_wait])
        .filter(|wait| !wait.is_zero())
        .min()
        .unwrap_or(Duration::from_secs(30));
    (shortest / 2).max(Duration::from_millis(100))
}

/// A batch in the pipeline: reported in progress at `due`, then every
/// `every`, until the pipeline is done with it; then settled. While the
/// pipeline stops, only once the input's pull requests ended
/// (`requests_ended`).
pub(super) async fn settle_when_done(
    client: async_nats::Client,
    ackers: Vec<Acker>,
    settled: TrackedAck,
    nak_delay: Vec<Duration>,
    (mut due, every): (Instant, Duration),
    (mut stopping, mut requests_ended): (Stopping, watch::Receiver<bool>),
) {
    let mut settled = std::pin::pin!(settled);
    let outcome = loop {
        tokio::select! {
            biased;
            outcome = &mut settled => {
                break outcome.unwrap_or_else(|_| Err("the pipeline dropped the batch".to_string()));
            }
            () = tokio::time::sleep_until(due) => {
                progress(&ackers).await;
                due = Instant::now() + every;
            }
        }
    };
    // While the pipeline stops (and for a batch it could not finish, which
    // means it stops), nothing is settled before the input's pull
    // requests ended: an acknowledgement would make room for the server
    // to send more to the input, which no longer reads them, and a NAK
    // would send the message there.
    if outcome.is_err() || stopping.requested().now_or_never().is_some() {
        // Closed: the input returned early, nothing of it is open.
        let _ = requests_ended.wait_for(|ended| *ended).await;
    }
    settle_and_flush(&client, ackers, outcome, &nak_delay, &mut stopping).await;
}

/// Tells the server the messages are still being worked on: each one's
/// `ack_wait` starts again.
pub(super) async fn progress(ackers: &[Acker]) {
    for acker in ackers {
        acknowledge(acker, AckKind::Progress).await;
    }
}

/// Once the inbox of this input's pull requests is unsubscribed, makes
/// sure the server has ended them before what the input holds is handed
/// back: waits until it took the unsubscription ([`wafer_nats::round_trip`]:
/// it follows on the connection), then asks for the consumer's info,
/// which has the server drop waiting requests that nobody listens to.
///
/// Both matter. A NAKed message given to a request still open goes to
/// that inbox, where nobody reads it, and comes back only after
/// `ack_wait`. And nats-server before 2.10.14 mishandles a message due
/// again (NAKed, or its `ack_wait` over) when the only requests waiting
/// have no listener: it steps the consumer back by one, so the last new
/// message it delivered goes out a second time as a first delivery
/// (nats-server#5305), and a message already processed would be
/// processed again.
///
/// In a cluster this holds only as far as the consumer's leader saw the
/// unsubscription before the info request, which the round trip to this
/// client's server does not ensure. Given up after [`SETTLE_PATIENCE`]
/// (the broker away): what is handed back may then come back late.
pub(super) async fn end_pull_requests(client: &async_nats::Client, consumer: &PullConsumer) {
    let ended = async {
        wafer_nats::round_trip(client).await?;
        consumer.get_info().await.map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    };
    let ended = tokio::time::timeout(SETTLE_PATIENCE, ended)
        .await
        .unwrap_or_else(|_| Err("no answer in time".to_string()));
    if let Err(error) = ended {
        tracing::debug!(%error, "JetStream consumer: could not confirm that its pull requests ended.");
    }
}

/// How long acknowledging a batch may wait for the server: a pipeline
/// stopping while the broker is away must still end.
pub(super) const SETTLE_PATIENCE: Duration = Duration::from_secs(10);

/// [`settle`], then the acknowledgements flushed to the socket; then,
/// when the pipeline is stopping by now (the process may be about to
/// end), confirmed processed by the server ([`wafer_nats::round_trip`]).
/// Given up after [`SETTLE_PATIENCE`]: what was not acknowledged is
/// delivered again.
///
/// The stop is looked at only once the flush is done: a stop requested
/// later is followed by the input's own final round trip, which comes
/// after these acknowledgements on the connection and so confirms them
/// too. Looked at before, a stop arriving meanwhile left acknowledgements
/// flushed but unconfirmed when the process ended, and the server could
/// deliver such a message again.
pub(super) async fn settle_and_flush(
    client: &async_nats::Client,
    ackers: Vec<Acker>,
    outcome: Result<Vec<Settled>, String>,
    nak_delay: &[Duration],
    stopping: &mut Stopping,
) {
    let settled = async {
        settle(ackers, outcome, nak_delay).await;
        client.flush().await.map_err(|e| e.to_string())?;
        if stopping.requested().now_or_never().is_some() {
            wafer_nats::round_trip(client).await?;
        }
        Ok::<(), String>(())
    };
    let failed = match tokio::time::timeout(SETTLE_PATIENCE, settled).await {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(_) => "no answer in time".to_string(),
    };
    tracing::warn!(
        "Could not acknowledge a batch to JetStream ({failed}); its messages will be delivered again."
    );
}

/// Acknowledges what the pipeline is done with and NAKs what it hands
/// back (after its delay) or could not finish (at once).
async fn settle(ackers: Vec<Acker>, outcome: Result<Vec<Settled>, String>, nak_delay: &[Duration]) {
    match outcome {
        Ok(settled) => {
            for (acker, settled) in ackers.into_iter().zip(settled) {
                let kind = match settled {
                    Settled::Done => AckKind::Ack,
                    Settled::Retry(error) => {
                        let delay = delay(nak_delay, acker.delivered);
                        tracing::debug!(
                            delivered = acker.delivered,
                            ?delay,
                            %error,
                            "A processor failed on a JetStream message: delivered again after the delay."
                        );
                        AckKind::Nak(delay)
                    }
                };
                acknowledge(&acker, kind).await;
            }
        }
        Err(_) => {
            for acker in ackers {
                acknowledge(&acker, AckKind::Nak(None)).await;
            }
        }
    }
}

/// The delay before delivery `delivered + 1`: the list's entry for this
/// delivery, its last one past its end.
fn delay(nak_delay: &[Duration], delivered: i64) -> Option<Duration> {
    let index = usize::try_from(delivered.max(1) - 1).unwrap_or(usize::MAX);
    nak_delay.get(index).or(nak_delay.last()).copied()
}

async fn acknowledge(acker: &Acker, kind: AckKind) {
    // A lost acknowledgement only means a delivery again, which an
    // output that de-duplicates absorbs.
    if let Err(error) = acker.acker.ack_with(kind).await {
        tracing::debug!(%error, "Could not acknowledge a JetStream message; it will be delivered again.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nak_delay_follows_the_delivery_count_and_repeats_its_last() {
        let delays = [Duration::from_secs(1), Duration::from_secs(5)];
        assert_eq!(delay(&delays, 1), Some(delays[0]));
        assert_eq!(delay(&delays, 2), Some(delays[1]));
        assert_eq!(delay(&delays, 9), Some(delays[1]));
        assert_eq!(delay(&[], 3), None);
    }

    #[test]
    fn progress_comes_at_half_the_shortest_wait_before_a_redelivery() {
        let config = |ack_wait: u64, backoff: &[u64]| consumer::Config {
            ack_wait: Duration::from_secs(ack_wait),
            backoff: backoff.iter().map(|s| Duration::from_secs(*s)).collect(),
            ..Default::default()
        };
        assert_eq!(progress_every(&config(30, &[])), Duration::from_secs(15));
        assert_eq!(
            progress_every(&config(30, &[4, 60])),
            Duration::from_secs(2)
        );
        assert_eq!(progress_every(&config(0, &[])), Duration::from_secs(15));
    }
}
