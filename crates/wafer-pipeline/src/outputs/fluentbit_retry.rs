//! Fluent Bit's retries, around its `file` and `http` outputs, as its
//! engine runs every output. They are on once the output has one of the
//! three fields below (a Fluent Bit config's outputs always do: its
//! `Retry_Limit` defaults to 1); without them a failed write fails, and
//! stops the pipeline, as any output's does.
//!
//! A batch (Fluent Bit's chunk) the output could not write is tried again
//! `retry_limit` times (Fluent Bit's `Retry_Limit`: a count, default 1;
//! `no_limits`, `false` or `off` for no limit; `no_retries` for none; the
//! leading digits of anything else, or 1 when there are none, with a
//! warning, as in Fluent Bit), the nth retry after a wait drawn as Fluent
//! Bit's scheduler draws it: a whole number of seconds from
//! `scheduler_base` to `min(scheduler_cap, scheduler_base × 2^n)` (the cap
//! caps the base too), plus one (a Fluent Bit config's `scheduler.base`,
//! default 5, and `scheduler.cap`, default 2000, in its `SERVICE`). Each
//! failure is logged with its wait. A batch that still fails then is
//! dropped, as Fluent Bit drops the chunk: logged, and its messages
//! rejected, so that the pipeline's `on_error` takes them (a Fluent Bit
//! config's pipelines drop them; each is counted as failed and dropped).
//! The pipeline goes on.
//!
//! While a batch waits, the batches behind it wait too and the input
//! slows, as Fluent Bit's input pauses when its buffer is full. A stop
//! (Ctrl-C, SIGTERM) ends the wait: the batch fails as it stands, and is
//! not acknowledged (Fluent Bit keeps retrying for its `Grace`). A reload
//! that replaces the output (its pipeline kept, with the same input) ends
//! the wait too: the batch is tried once more at once and dropped if that
//! fails, and so are, untried, the batches the old output still has to
//! write, as a Fluent Bit hot reload loses the chunks it holds; the new
//! output then takes over. A reload that removes the pipeline or changes
//! its input stops it.
//!
//! The three fields sit beside the output's own, as `Retry_Limit` sits in
//! Fluent Bit's `[OUTPUT]` section:
//!
//! ```yaml
//! output:
//!   fluentbit_http: {host: logs.internal, port: 9880, retry_limit: 3}
//! ```

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::{Build, Output, Rejected};
use crate::config::{ComponentConfig, ComponentError};
use crate::fluentbit::value;
use crate::{BoxFuture, BuildContext, Stopping};

/// Fluent Bit's default `scheduler.base`, in seconds.
const SCHEDULER_BASE: u64 = 5;
/// Fluent Bit's default `scheduler.cap`, in seconds.
const SCHEDULER_CAP: u64 = 2000;

/// The fields taken here; the output has the rest.
const FIELDS: [&str; 3] = ["retry_limit", "scheduler_base", "scheduler_cap"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryConfig {
    #[serde(default = "one_retry", deserialize_with = "retry_limit")]
    retry_limit: RetryLimit,
    #[serde(default = "default_base", deserialize_with = "seconds")]
    scheduler_base: u64,
    #[serde(default = "default_cap", deserialize_with = "seconds")]
    scheduler_cap: u64,
}

fn one_retry() -> RetryLimit {
    RetryLimit::Times(1)
}

fn default_base() -> u64 {
    SCHEDULER_BASE
}

fn default_cap() -> u64 {
    SCHEDULER_CAP
}

/// How many times a failed batch is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetryLimit {
    Times(u64),
    NoLimit,
}

impl RetryLimit {
    /// `Retry_Limit` as `flb_output.c` reads it (its number with `atoi`).
    fn parse(text: &str) -> RetryLimit {
        match text.trim().to_ascii_lowercase().as_str() {
            "no_limits" | "false" | "off" => RetryLimit::NoLimit,
            "no_retries" => RetryLimit::Times(0),
            other => {
                let digits =
                    other.len() - other.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                match other[..digits].parse::<u64>() {
                    Ok(times) if times > 0 => {
                        if digits < other.len() {
                            tracing::warn!(
                                "retry_limit `{text}` is read as {times} (as in Fluent Bit)."
                            );
                        }
                        RetryLimit::Times(times)
                    }
                    _ => {
                        tracing::warn!(
                            "retry_limit `{text}` is not a count above 0, no_limits, false, off or no_retries: 1 is used (as in Fluent Bit)."
                        );
                        RetryLimit::Times(1)
                    }
                }
            }
        }
    }

    fn allows(self, retry: u64) -> bool {
        match self {
            RetryLimit::Times(times) => retry <= times,
            RetryLimit::NoLimit => true,
        }
    }
}

fn retry_limit<'de, D: Deserializer<'de>>(d: D) -> Result<RetryLimit, D::Error> {
    value::text(d).map(|text| RetryLimit::parse(&text))
}

fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let seconds = value::int(d)?;
    u64::try_from(seconds)
        .map_err(|_| serde::de::Error::custom(format!("`{seconds}` is not a number of seconds")))
}

/// Fluent Bit's `backoff_full_jitter`, and the second it adds.
struct Schedule {
    base: u64,
    cap: u64,
    /// Added to every wait: one second in Fluent Bit.
    extra: Duration,
    random: StdRng,
}

impl Schedule {
    fn new(base: u64, cap: u64) -> Schedule {
        // Jitter needs no secret: the clock's nanoseconds seed it.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64);
        Schedule {
            base,
            cap,
            extra: Duration::from_secs(1),
            random: StdRng::seed_from_u64(seed),
        }
    }

    /// The wait before the `retry`th retry (from 1).
    fn wait(&mut self, retry: u64) -> Duration {
        let doubled = 1u64
            .checked_shl(u32::try_from(retry).unwrap_or(u32::MAX))
            .and_then(|factor| self.base.checked_mul(factor))
            .unwrap_or(u64::MAX);
        let high = self.cap.min(doubled);
        let low = self.base.min(high);
        Duration::from_secs(self.random.random_range(low..=high)).saturating_add(self.extra)
    }
}

/// An output, retried as Fluent Bit retries its outputs.
struct Retried {
    output: Box<dyn Output>,
    /// How logs name the output: its label, or its place.
    name: String,
    limit: RetryLimit,
    schedule: Schedule,
    /// Given at the start; a stop or a reload ends a wait.
    stopping: Option<Stopping>,
    /// A reload replaced it and a write failed since: the batches still
    /// coming are dropped without being tried, so that the new output
    /// takes over without waiting for each to fail.
    abandoned: bool,
}

/// Builds `config`'s output with `build`, from its fields but the three
/// taken here; when it has any of them, retries its writes as Fluent Bit
/// does. Without them a failed write fails, as any other output's does.
pub(super) fn retried(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
    build: Build,
) -> Result<Box<dyn Output>, ComponentError> {
    let mut own = config.clone();
    let mut taken = Map::new();
    if let Value::Object(fields) = &mut own.body {
        for field in FIELDS {
            if let Some(value) = fields.remove(field) {
                taken.insert(field.to_string(), value);
            }
        }
    }
    if taken.is_empty() {
        return build(&own, cx);
    }
    let retry = ComponentConfig {
        body: Value::Object(taken),
        ..config.clone()
    };
    let parsed: RetryConfig = retry.parse()?;
    Ok(Box::new(Retried {
        output: build(&own, cx)?,
        name: config.name().to_string(),
        limit: parsed.retry_limit,
        schedule: Schedule::new(parsed.scheduler_base, parsed.scheduler_cap),
        stopping: None,
        abandoned: false,
    }))
}

impl Retried {
    /// A batch of `count` given up on (`when`, because of `error`):
    /// logged, and each of its messages rejected.
    fn dropped(&self, count: usize, when: &str, error: &str) -> Vec<Rejected> {
        tracing::warn!(output = %self.name, records = count, "Dropped a batch {when}: {error}");
        Rejected::all(count, &format!("dropped {when}: {error}"))
    }

    /// Waits `wait`, unless the pipeline stops or a reload replaces the
    /// output first; whether the pipeline stopped.
    async fn wait(&mut self, wait: Duration) -> bool {
        let Some(stopping) = self.stopping.as_mut() else {
            tokio::time::sleep(wait).await;
            return false;
        };
        let mut stop = stopping.clone();
        // A stop outranks a reload that comes with it: the batch then
        // fails, not acknowledged, rather than being dropped.
        tokio::select! {
            biased;
            () = stop.requested() => true,
            () = stopping.replaced() => false,
            () = tokio::time::sleep(wait) => false,
        }
    }
}

impl Output for Retried {
    fn start(&mut self, stopping: Stopping) -> BoxFuture<'_, Result<(), String>> {
        self.stopping = Some(stopping.clone());
        self.output.start(stopping)
    }

    fn write<'a>(
        &'a mut self,
        batch: &'a [wafer::Message],
    ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
        Box::pin(async move {
            let stopped =
                |error: &str| format!("{error} (not tried again: the pipeline is stopping)");
            if self.abandoned {
                // A stop outranks the reload here too: not acknowledged.
                if self.stopping.as_ref().is_some_and(Stopping::is_requested) {
                    return Err(
                        "not tried: the pipeline is stopping, after a reload replaced the output and its last write failed"
                            .to_string(),
                    );
                }
                return Ok(self.dropped(
                    batch.len(),
                    "untried",
                    "a reload replaced the output, and its last write failed",
                ));
            }
            let mut retry = 0;
            loop {
                let error = match self.output.write(batch).await {
                    Ok(rejected) => return Ok(rejected),
                    Err(error) => error,
                };
                let stopping = self.stopping.as_ref();
                if stopping.is_some_and(Stopping::is_requested) {
                    return Err(stopped(&error));
                }
                retry += 1;
                if stopping.is_some_and(Stopping::is_replaced) {
                    self.abandoned = true;
                    return Ok(self.dropped(
                        batch.len(),
                        "after a reload replaced the output",
                        &error,
                    ));
                }
                if !self.limit.allows(retry) {
                    let tries = match retry - 1 {
                        1 => "after 1 retry".to_string(),
                        n => format!("after {n} retries"),
                    };
                    return Ok(self.dropped(batch.len(), &tries, &error));
                }
                let wait = self.schedule.wait(retry);
                tracing::warn!(output = %self.name, retry, "Writing failed, trying again in {} s: {error}", wait.as_secs());
                if self.wait(wait).await {
                    return Err(stopped(&error));
                }
            }
        })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), String>> {
        self.output.close()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Poll;

    use super::*;

    #[test]
    fn retry_limit_reads_as_fluent_bit_reads_it() {
        assert_eq!(RetryLimit::parse("3"), RetryLimit::Times(3));
        for unlimited in ["no_limits", "False", "OFF"] {
            assert_eq!(RetryLimit::parse(unlimited), RetryLimit::NoLimit);
        }
        assert_eq!(RetryLimit::parse("no_retries"), RetryLimit::Times(0));
        for bad in ["0", "-2", "many"] {
            assert_eq!(RetryLimit::parse(bad), RetryLimit::Times(1), "{bad}");
        }
        // atoi's reading: the leading digits.
        assert_eq!(RetryLimit::parse("3abc"), RetryLimit::Times(3));
        assert!(RetryLimit::Times(2).allows(2));
        assert!(!RetryLimit::Times(2).allows(3));
        assert!(!RetryLimit::Times(0).allows(1));
        assert!(RetryLimit::NoLimit.allows(u64::MAX));
    }

    #[test]
    fn waits_are_drawn_between_the_base_and_the_doubled_base_capped() {
        let mut schedule = Schedule::new(5, 2000);
        for _ in 0..200 {
            let first = schedule.wait(1).as_secs();
            assert!((6..=11).contains(&first), "{first}");
            let third = schedule.wait(3).as_secs();
            assert!((6..=41).contains(&third), "{third}");
            // Capped, and no overflow however many retries came before.
            let late = schedule.wait(200).as_secs();
            assert!((6..=2001).contains(&late), "{late}");
        }
        // A cap under the base caps the base too.
        let mut small = Schedule::new(10, 3);
        assert_eq!(small.wait(1), Duration::from_secs(4));
    }

    /// An output failing its first `failures` writes.
    struct Flaky {
        failures: usize,
        writes: Arc<AtomicUsize>,
    }

    impl Output for Flaky {
        fn write<'a>(
            &'a mut self,
            _: &'a [wafer::Message],
        ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
            let n = self.writes.fetch_add(1, Ordering::SeqCst);
            let failed = n < self.failures;
            Box::pin(async move {
                match failed {
                    true => Err(format!("refused write {n}")),
                    false => Ok(Vec::new()),
                }
            })
        }
    }

    fn retrying(failures: usize, limit: RetryLimit) -> (Retried, Arc<AtomicUsize>) {
        let writes = Arc::new(AtomicUsize::new(0));
        let mut schedule = Schedule::new(0, 0);
        schedule.extra = Duration::ZERO;
        let retry = Retried {
            output: Box::new(Flaky {
                failures,
                writes: writes.clone(),
            }),
            name: "out".into(),
            limit,
            schedule,
            stopping: None,
            abandoned: false,
        };
        (retry, writes)
    }

    /// [`retrying`], started with `stopping`, its waits an hour long:
    /// only a stop or a reload ends one in a test.
    async fn waiting(failures: usize, stopping: Stopping) -> (Retried, Arc<AtomicUsize>) {
        let (mut retry, writes) = retrying(failures, RetryLimit::NoLimit);
        retry.schedule.extra = Duration::from_secs(3600);
        retry.start(stopping).await.unwrap();
        (retry, writes)
    }

    /// `write`'s answer, once a stop or a reload ended its hour-long wait
    /// (a generous bound, so that a wake-up that never comes fails).
    async fn woken(
        write: BoxFuture<'_, Result<Vec<Rejected>, String>>,
    ) -> Result<Vec<Rejected>, String> {
        tokio::time::timeout(Duration::from_secs(10), write)
            .await
            .expect("the wait ended when told")
    }

    #[tokio::test]
    async fn a_stop_outranks_a_reload_that_comes_with_it() {
        let batch = [wafer::Message::new("a")];
        let retire = tokio::sync::watch::Sender::new(false);
        let (stop, stopping) = Stopping::channel();
        let (mut retry, _) = waiting(usize::MAX, stopping.for_stage(&retire)).await;
        // Given up after a reload: the batches after are dropped untried...
        retire.send_replace(true);
        assert!(retry.write(&batch).await.is_ok());
        assert!(retry.abandoned);
        // ...until a stop: then they fail, not acknowledged.
        stop.send_replace(true);
        let failed = retry.write(&batch).await.unwrap_err();
        assert!(failed.contains("the pipeline is stopping"), "{failed}");
        // Both told while a batch waits: it fails.
        let retire = tokio::sync::watch::Sender::new(false);
        let (stop, stopping) = Stopping::channel();
        let (mut retry, _) = waiting(usize::MAX, stopping.for_stage(&retire)).await;
        let mut write = retry.write(&batch);
        let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
        assert!(first.is_pending());
        retire.send_replace(true);
        stop.send_replace(true);
        assert!(woken(write).await.is_err());
    }

    #[tokio::test]
    async fn a_batch_is_tried_again_up_to_the_limit_then_dropped() {
        let batch = [wafer::Message::new("a"), wafer::Message::new("b")];
        let (mut two, writes) = retrying(2, RetryLimit::Times(2));
        assert_eq!(two.write(&batch).await, Ok(Vec::new()));
        assert_eq!(writes.load(Ordering::SeqCst), 3);

        let (mut one, writes) = retrying(5, RetryLimit::Times(1));
        let dropped = one.write(&batch).await.unwrap();
        assert_eq!(writes.load(Ordering::SeqCst), 2);
        let expected = "dropped after 1 retry: refused write 1";
        assert_eq!(
            dropped,
            vec![
                Rejected {
                    index: 0,
                    error: expected.into()
                },
                Rejected {
                    index: 1,
                    error: expected.into()
                },
            ]
        );

        let (mut none, writes) = retrying(5, RetryLimit::Times(0));
        let dropped = none.write(&batch).await.unwrap();
        assert_eq!(writes.load(Ordering::SeqCst), 1);
        assert_eq!(dropped[0].error, "dropped after 0 retries: refused write 0");

        let (mut unlimited, writes) = retrying(20, RetryLimit::NoLimit);
        assert_eq!(unlimited.write(&batch).await, Ok(Vec::new()));
        assert_eq!(writes.load(Ordering::SeqCst), 21);
    }

    #[tokio::test]
    async fn a_reload_ends_the_wait_and_the_batch_is_tried_once_more() {
        let batch = [wafer::Message::new("a")];
        let retire = tokio::sync::watch::Sender::new(false);
        let (_stop, stopping) = Stopping::channel();
        // Taken on the last try: written.
        let (mut retry, writes) = waiting(1, stopping.for_stage(&retire)).await;
        let mut write = retry.write(&batch);
        let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
        assert!(first.is_pending());
        retire.send_replace(true);
        assert_eq!(woken(write).await, Ok(Vec::new()));
        assert_eq!(writes.load(Ordering::SeqCst), 2);
        // Refused again: dropped, and so are, untried, the batches after it.
        let retire = tokio::sync::watch::Sender::new(false);
        let (mut retry, writes) = waiting(2, stopping.for_stage(&retire)).await;
        let mut write = retry.write(&batch);
        let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
        assert!(first.is_pending());
        retire.send_replace(true);
        let dropped = woken(write).await.unwrap();
        assert_eq!(writes.load(Ordering::SeqCst), 2);
        assert_eq!(
            dropped[0].error,
            "dropped after a reload replaced the output: refused write 1"
        );
        let later = retry.write(&batch).await.unwrap();
        assert_eq!(writes.load(Ordering::SeqCst), 2);
        assert_eq!(
            later[0].error,
            "dropped untried: a reload replaced the output, and its last write failed"
        );
    }

    #[tokio::test]
    async fn a_stop_ends_the_wait_and_fails_the_batch() {
        let (stop, stopping) = Stopping::channel();
        let (mut retry, writes) = waiting(usize::MAX, stopping).await;
        let batch = [wafer::Message::new("a")];
        let mut write = retry.write(&batch);
        // The first write failed, and the wait began.
        let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
        assert!(first.is_pending());
        assert_eq!(writes.load(Ordering::SeqCst), 1);
        stop.send_replace(true);
        let failed = woken(write).await.unwrap_err();
        assert_eq!(
            failed,
            "refused write 0 (not tried again: the pipeline is stopping)"
        );
    }
}
