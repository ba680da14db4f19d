//! `dummy`: Fluent Bit's input of that name (`plugins/in_dummy`): the same
//! record again and again.
//!
//! * `dummy` (default `{"message":"dummy"}`): the record, a JSON object
//!   (anything else is a problem; Fluent Bit falls back to its default).
//!   Every record shares its bytes.
//! * `metadata` (default `{}`): a JSON object whose fields become each
//!   record's metadata (text as it is, other values as JSON); the tag is
//!   the input's whatever it says.
//! * Pace: a tick every `interval_sec` + `interval_nsec` when set, else
//!   `rate` ticks a second (default 1); each tick makes `copies` records
//!   (default 1). The first tick comes after one period, as Fluent Bit's
//!   timer fires, or at once with `flush_on_startup`. Ticks are counted
//!   from the start rather than slept one by one, so a rate the clock
//!   cannot resolve (more than 10^9) runs as fast as the pipeline takes
//!   records, and ticks that fell behind go out together.
//! * `samples` (default 0, no end): the number of ticks, as Fluent Bit
//!   counts them (`samples` x `copies` records); then the input ends, so
//!   `wafer run` exits once they are written.
//! * Time: now; with `start_time_sec`/`start_time_nsec`, that instant plus
//!   the time since start; with `fixed_timestamp`, always that instant (or
//!   the start).
//! * `tag` (default `dummy`).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use wafer::{Message, Metadata};

use super::{Input, MAX_BATCH};
use crate::config::{ComponentConfig, ComponentError};
use crate::fluentbit::{TAG, value};
use crate::{BoxFuture, BuildContext, Sink};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DummyConfig {
    #[serde(default = "default_dummy", deserialize_with = "value::text")]
    dummy: String,
    #[serde(default = "default_metadata", deserialize_with = "value::text")]
    metadata: String,
    #[serde(default = "one", deserialize_with = "value::int")]
    rate: i64,
    #[serde(default, deserialize_with = "value::int")]
    interval_sec: i64,
    #[serde(default, deserialize_with = "value::int")]
    interval_nsec: i64,
    #[serde(default = "one", deserialize_with = "value::int")]
    copies: i64,
    #[serde(default, deserialize_with = "value::int")]
    samples: i64,
    #[serde(default = "minus_one", deserialize_with = "value::int")]
    start_time_sec: i64,
    #[serde(default = "minus_one", deserialize_with = "value::int")]
    start_time_nsec: i64,
    #[serde(default, deserialize_with = "value::bool")]
    fixed_timestamp: bool,
    #[serde(default, deserialize_with = "value::bool")]
    flush_on_startup: bool,
    #[serde(default = "default_tag", deserialize_with = "value::text")]
    tag: String,
}

fn default_dummy() -> String {
    r#"{"message":"dummy"}"#.into()
}

fn default_metadata() -> String {
    "{}".into()
}

fn default_tag() -> String {
    "dummy".into()
}

fn one() -> i64 {
    1
}

fn minus_one() -> i64 {
    -1
}

struct Dummy {
    body: Bytes,
    metadata: Metadata,
    /// Zero: as fast as the pipeline takes them.
    period: Duration,
    copies: u64,
    /// 0: no end.
    samples: u64,
    flush_on_startup: bool,
    start_time: Option<SystemTime>,
    fixed_timestamp: bool,
}

pub(super) fn build(
    config: &ComponentConfig,
    _: &BuildContext<'_>,
) -> Result<Box<dyn Input>, ComponentError> {
    let parsed: DummyConfig = config.parse()?;
    let body = match serde_json::from_str::<Value>(&parsed.dummy) {
        Ok(record @ Value::Object(_)) => Bytes::from(record.to_string()),
        Ok(_) => return Err(ComponentError::invalid("dummy", "not a JSON object")),
        Err(e) => return Err(ComponentError::invalid("dummy", format!("not JSON: {e}"))),
    };
    let mut metadata = match serde_json::from_str::<Value>(&parsed.metadata) {
        Ok(Value::Object(fields)) => fields
            .into_iter()
            .map(|(key, value)| match value {
                Value::String(text) => (key, text),
                other => (key, other.to_string()),
            })
            .collect::<Metadata>(),
        Ok(_) => return Err(ComponentError::invalid("metadata", "not a JSON object")),
        Err(e) => {
            return Err(ComponentError::invalid(
                "metadata",
                format!("not JSON: {e}"),
            ));
        }
    };
    metadata.insert(TAG.to_string(), parsed.tag.clone());
    if parsed.copies < 1 {
        return Err(ComponentError::invalid("copies", "at least 1"));
    }
    let start_time = match (parsed.start_time_sec >= 0 || parsed.start_time_nsec >= 0).then(|| {
        SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs(
                parsed.start_time_sec.max(0).unsigned_abs(),
            ))?
            .checked_add(Duration::from_nanos(
                parsed.start_time_nsec.max(0).unsigned_abs(),
            ))
    }) {
        None => None,
        Some(Some(start)) => Some(start),
        Some(None) => {
            return Err(ComponentError::invalid(
                "start_time_sec",
                "too far in the future for a timestamp",
            ));
        }
    };
    Ok(Box::new(Dummy {
        body,
        metadata,
        period: period(&parsed),
        copies: parsed.copies.unsigned_abs(),
        samples: parsed.samples.max(0).unsigned_abs(),
        flush_on_startup: parsed.flush_on_startup,
        start_time,
        fixed_timestamp: parsed.fixed_timestamp,
    }))
}

/// The time between ticks, as `in_dummy`'s `configure` computes it.
fn period(config: &DummyConfig) -> Duration {
    let (sec, nsec) = if config.interval_sec < 0 || config.interval_nsec < 0 {
        (0, 0)
    } else {
        (
            config.interval_sec.unsigned_abs(),
            config.interval_nsec.unsigned_abs(),
        )
    };
    if sec > 0 || nsec > 0 {
        Duration::from_secs(sec) + Duration::from_nanos(nsec)
    } else if config.rate > 1 {
        Duration::from_nanos(1_000_000_000 / config.rate.unsigned_abs())
    } else {
        Duration::from_secs(1)
    }
}

impl Dummy {
    /// How many ticks are due `elapsed` after the start.
    fn due(&self, elapsed: Duration) -> u64 {
        if self.period.is_zero() {
            return u64::MAX;
        }
        let ticks = elapsed.as_nanos() / self.period.as_nanos();
        u64::try_from(ticks)
            .unwrap_or(u64::MAX)
            .saturating_add(u64::from(self.flush_on_startup))
    }

    /// When tick number `tick` (counted from 0) is due.
    fn due_at(&self, start: tokio::time::Instant, tick: u64) -> tokio::time::Instant {
        let periods = tick + 1 - u64::from(self.flush_on_startup);
        let offset = self.period.as_nanos().saturating_mul(periods.into());
        start + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
    }

    fn timestamp(&self, base: SystemTime) -> SystemTime {
        match (self.fixed_timestamp, self.start_time) {
            (true, Some(start)) => start,
            (true, None) => base,
            (false, Some(start)) => start
                .checked_add(base.elapsed().unwrap_or_default())
                .unwrap_or(start),
            (false, None) => SystemTime::now(),
        }
    }
}

impl Input for Dummy {
    fn run(self: Box<Self>, mut sink: Sink) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            let start = tokio::time::Instant::now();
            let base = SystemTime::now();
            let ticks_per_batch = (MAX_BATCH as u64 / self.copies).max(1);
            let mut done = 0u64;
            loop {
                let mut due = self.due(start.elapsed());
                if self.samples > 0 {
                    if done >= self.samples {
                        return Ok(());
                    }
                    due = due.min(self.samples);
                }
                if due <= done {
                    tokio::time::sleep_until(self.due_at(start, done)).await;
                    continue;
                }
                let ticks = (due - done).min(ticks_per_batch);
                // One clock read a batch: its records are made together.
                let timestamp = self.timestamp(base);
                // A tick of more than `MAX_BATCH` copies goes out in
                // several batches.
                let mut left = ticks * self.copies;
                while left > 0 {
                    let n = left.min(MAX_BATCH as u64);
                    let batch = (0..n)
                        .map(|_| Message {
                            bytes: self.body.clone(),
                            metadata: self.metadata.clone(),
                            timestamp,
                            error: None,
                        })
                        .collect();
                    if sink.send(batch).await.is_err() {
                        return Ok(());
                    }
                    left -= n;
                }
                done += ticks;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> DummyConfig {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn the_period_follows_interval_then_rate() {
        assert_eq!(period(&config("{}")), Duration::from_secs(1));
        assert_eq!(period(&config("{rate: '4'}")), Duration::from_millis(250));
        assert_eq!(
            period(&config("{rate: 4, interval_nsec: 5}")),
            Duration::from_nanos(5)
        );
        assert_eq!(
            period(&config("{rate: 4, interval_sec: -1}")),
            Duration::from_millis(250)
        );
        assert_eq!(period(&config("{rate: 2000000000}")), Duration::ZERO);
    }

    fn dummy(flush_on_startup: bool) -> Dummy {
        Dummy {
            body: Bytes::new(),
            metadata: Metadata::new(),
            period: Duration::from_secs(1),
            copies: 1,
            samples: 0,
            flush_on_startup,
            start_time: None,
            fixed_timestamp: false,
        }
    }

    #[test]
    fn ticks_are_due_after_each_period_or_also_at_start() {
        let start = tokio::time::Instant::now();
        let ms = Duration::from_millis;
        let late = dummy(false);
        assert_eq!(late.due(ms(999)), 0);
        assert_eq!(late.due(ms(1000)), 1);
        assert_eq!(late.due(ms(3500)), 3);
        assert_eq!(late.due_at(start, 0), start + ms(1000));
        let early = dummy(true);
        assert_eq!(early.due(ms(0)), 1);
        assert_eq!(early.due(ms(1000)), 2);
        assert_eq!(early.due_at(start, 0), start);
        assert_eq!(early.due_at(start, 2), start + ms(2000));
    }
}
