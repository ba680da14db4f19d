//! Call metrics, counted once on the call path and rendered in the
//! Prometheus text format ([`crate::Runtime::metrics_text`]), with the
//! pipelines' own ([`pipeline`]).
//!
//! Per function: calls by outcome, a latency histogram, instances created
//! and alive, calls running and waiting. Per runtime: modules compiled,
//! compiled code loaded from the disk cache, and the time spent compiling.
//!
//! | series | type | labels |
//! |---|---|---|
//! | `wafer_function_calls_total` | counter | `function`, `outcome` |
//! | `wafer_function_call_duration_seconds` | histogram | `function` |
//! | `wafer_function_instances_created_total` | counter | `function` |
//! | `wafer_function_instances` | gauge | `function`, `state` (`alive`, `idle`) |
//! | `wafer_function_calls_in_flight` | gauge | `function`, `state` (`running`, `waiting`) |
//! | `wafer_outbound_http_requests_total` | counter | `function`, `outcome` (`allowed`, `denied`) |
//! | `wafer_modules_compiled_total` | counter | |
//! | `wafer_compiled_cache_hits_total` | counter | |
//! | `wafer_compile_duration_seconds_total` | counter | |
//! | `wafer_registry_generation` | gauge | |
//! | `wafer_reloads_total` | counter | `outcome` (`applied`, `refused`) |
//!
//! `outcome` is `ok`, `guest_error` (a `result` error or a program's
//! non-zero exit: the call succeeded) or an [`ErrorKind`] (`trap`,
//! `time_limit`, `memory_limit`, `output_limit`, `pool_full`, `bad_input`,
//! `refused`, ...).
//!
//! Recording costs a few uncontended atomic additions: each thread counts
//! into its own shard, and shards are summed only when the metrics are
//! rendered.
//!
//! Pipelines add their own series ([`pipeline`]), components that hold a
//! broker connection theirs ([`connections`]), and a process that reloads
//! its registry the generation it serves ([`reloads`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

pub mod connections;
pub mod pipeline;
pub mod reloads;

pub use connections::{ConnectionState, Connections};
pub use pipeline::{MessageCount, PipelineMetrics};
pub use reloads::Reloads;

use std::sync::Arc;

use crate::compiler::CompileStats;
use crate::error::ErrorKind;
use crate::pools::PoolStats;
use crate::shards::{self, home_shard};

/// Upper bounds of the latency histogram's buckets, in nanoseconds: 1 µs
/// to 10 s.
const BUCKETS_NS: [u64; 22] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// `ok`, `guest_error`, then every [`ErrorKind`].
const OUTCOMES: usize = 2 + ErrorKind::ALL.len();

/// The name of outcome `i`.
fn outcome_name(i: usize) -> &'static str {
    match i {
        0 => "ok",
        1 => "guest_error",
        _ => ErrorKind::ALL[i - 2].as_str(),
    }
}

fn outcome_index(kind: ErrorKind) -> usize {
    2 + ErrorKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("ErrorKind::ALL lists every kind")
}

/// How one call ended, as the metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It succeeded.
    Ok,
    /// It succeeded with a guest error in its answer.
    GuestError,
    /// It failed.
    Failed(ErrorKind),
}

impl Outcome {
    fn index(self) -> usize {
        match self {
            Outcome::Ok => 0,
            Outcome::GuestError => 1,
            Outcome::Failed(kind) => outcome_index(kind),
        }
    }
}

/// One function's call counters.
pub(crate) struct FunctionMetrics {
    shards: Box<[Shard]>,
    /// Outbound HTTP requests its guests sent, allowed and denied.
    outbound: [AtomicU64; 2],
}

/// One thread shard's counters, on cache lines of its own.
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    outcomes: [AtomicU64; OUTCOMES],
    /// Calls per latency bucket; the last counts calls above every bound.
    buckets: [AtomicU64; BUCKETS_NS.len() + 1],
    total_ns: AtomicU64,
}

impl FunctionMetrics {
    pub fn new() -> FunctionMetrics {
        FunctionMetrics {
            shards: (0..shards::count()).map(|_| Shard::default()).collect(),
            outbound: Default::default(),
        }
    }

    /// Counts one outbound HTTP request, allowed or denied.
    pub fn count_outbound(&self, allowed: bool) {
        self.outbound[usize::from(!allowed)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one call that took `elapsed`.
    pub fn record(&self, outcome: Outcome, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_NS.partition_point(|&bound| bound < nanos);
        let shard = self.home();
        shard.outcomes[outcome.index()].fetch_add(1, Ordering::Relaxed);
        shard.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        shard.total_ns.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Counts a call refused before it reached the function (it was
    /// refused at load): an outcome without a latency.
    pub fn record_refused(&self, kind: ErrorKind) {
        self.home().outcomes[outcome_index(kind)].fetch_add(1, Ordering::Relaxed);
    }

    fn home(&self) -> &Shard {
        &self.shards[home_shard(self.shards.len())]
    }

    /// The counters summed over every shard.
    pub fn snapshot(&self) -> CallStats {
        let mut stats = CallStats::default();
        for shard in &self.shards {
            for (sum, count) in stats.outcomes.iter_mut().zip(&shard.outcomes) {
                *sum += count.load(Ordering::Relaxed);
            }
            for (sum, count) in stats.buckets.iter_mut().zip(&shard.buckets) {
                *sum += count.load(Ordering::Relaxed);
            }
            stats.total += Duration::from_nanos(shard.total_ns.load(Ordering::Relaxed));
        }
        stats.outbound_allowed = self.outbound[0].load(Ordering::Relaxed);
        stats.outbound_denied = self.outbound[1].load(Ordering::Relaxed);
        stats
    }
}

/// A function's call counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallStats {
    outcomes: [u64; OUTCOMES],
    buckets: [u64; BUCKETS_NS.len() + 1],
    /// The time all calls took together.
    pub total: Duration,
    /// Outbound HTTP requests its guests were allowed to send.
    pub outbound_allowed: u64,
    /// Outbound HTTP requests denied (not in `allowed_outbound_hosts`).
    pub outbound_denied: u64,
}

impl CallStats {
    /// Every call counted (refused ones included; they have no latency).
    pub fn calls(&self) -> u64 {
        self.outcomes.iter().sum()
    }

    /// Calls that succeeded (guest errors included).
    pub fn succeeded(&self) -> u64 {
        self.outcomes[0] + self.outcomes[1]
    }

    /// Calls whose answer carried a guest error.
    pub fn guest_errors(&self) -> u64 {
        self.outcomes[1]
    }

    /// Calls that failed with `kind`.
    pub fn failed(&self, kind: ErrorKind) -> u64 {
        self.outcomes[outcome_index(kind)]
    }

    /// Every outcome with its count: `("ok", n)`, `("guest_error", n)`,
    /// then each [`ErrorKind`] by name.
    pub fn by_outcome(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.outcomes
            .iter()
            .enumerate()
            .map(|(i, &count)| (outcome_name(i), count))
    }
}

/// One function's figures at render time.
#[derive(Debug)]
pub(crate) struct FunctionSnapshot {
    pub id: String,
    pub calls: CallStats,
    pub pool: PoolStats,
}

/// Everything rendered at once: a consistent copy, so that rendering takes
/// no lock the call path takes.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub functions: Vec<FunctionSnapshot>,
    pub compile: CompileStats,
    pub pipelines: Vec<Arc<PipelineMetrics>>,
    pub connections: Vec<Arc<ConnectionState>>,
    pub generation: u64,
    pub reloads: Arc<Reloads>,
}

/// Each bucket's upper bound in seconds (the last one infinite) with its
/// count.
fn bucket_bounds(counts: &[u64]) -> Vec<(f64, u64)> {
    BUCKETS_NS
        .iter()
        .map(|&ns| ns as f64 / 1e9)
        .chain(std::iter::once(f64::INFINITY))
        .zip(counts.iter().copied())
        .collect()
}

impl Snapshot {
    /// The Prometheus text format (OpenMetrics flavour, ending in `# EOF`).
    pub fn render(self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(self));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .expect("writing to a String cannot fail");
        text
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let functions = &self.functions;
        {
            let mut family = encoder.encode_descriptor(
                "wafer_function_calls",
                "Calls by function and outcome.",
                None,
                MetricType::Counter,
            )?;
            for function in functions {
                for (outcome, count) in function.calls.by_outcome() {
                    let labels = [("function", function.id.as_str()), ("outcome", outcome)];
                    family
                        .encode_family(&labels)?
                        .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "wafer_function_call_duration",
                "How long calls took, from the call to its answer.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for function in functions {
                let calls = &function.calls;
                let buckets = bucket_bounds(&calls.buckets);
                family
                    .encode_family(&[("function", function.id.as_str())])?
                    .encode_histogram::<NoLabelSet>(
                        calls.total.as_secs_f64(),
                        calls.buckets.iter().sum(),
                        &buckets,
                        None,
                    )?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "wafer_function_instances_created",
                "Instances created since the function was loaded.",
                None,
                MetricType::Counter,
            )?;
            for function in functions {
                family
                    .encode_family(&[("function", function.id.as_str())])?
                    .encode_counter::<NoLabelSet, _, u64>(&function.pool.created, None)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "wafer_function_instances",
                "Instances alive now (running or idle), and idle.",
                None,
                MetricType::Gauge,
            )?;
            for function in functions {
                for (state, count) in [("alive", function.pool.live), ("idle", function.pool.idle)]
                {
                    family
                        .encode_family(&[("function", function.id.as_str()), ("state", state)])?
                        .encode_gauge(&(count as i64))?;
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "wafer_function_calls_in_flight",
                "Calls running now, and calls waiting in the pool's queue.",
                None,
                MetricType::Gauge,
            )?;
            for function in functions {
                let states = [
                    ("running", function.pool.running),
                    ("waiting", function.pool.waiting),
                ];
                for (state, count) in states {
                    family
                        .encode_family(&[("function", function.id.as_str()), ("state", state)])?
                        .encode_gauge(&(count as i64))?;
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "wafer_outbound_http_requests",
                "Outbound HTTP requests of guests, allowed or denied by allowed_outbound_hosts.",
                None,
                MetricType::Counter,
            )?;
            for function in functions {
                let calls = &function.calls;
                if calls.outbound_allowed + calls.outbound_denied == 0 {
                    continue;
                }
                let outcomes = [
                    ("allowed", calls.outbound_allowed),
                    ("denied", calls.outbound_denied),
                ];
                for (outcome, count) in outcomes {
                    family
                        .encode_family(&[("function", function.id.as_str()), ("outcome", outcome)])?
                        .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
                }
            }
        }
        let compile = &self.compile;
        let counts = [
            (
                "wafer_modules_compiled",
                "Modules and components compiled by Cranelift.",
                compile.compiled as u64,
            ),
            (
                "wafer_compiled_cache_hits",
                "Compiled code loaded from the disk cache instead of compiled.",
                compile.from_cache as u64,
            ),
        ];
        for (name, help, count) in counts {
            encoder
                .encode_descriptor(name, help, None, MetricType::Counter)?
                .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
        }
        encoder
            .encode_descriptor(
                "wafer_compile_duration",
                "Time spent compiling.",
                Some(&Unit::Seconds),
                MetricType::Counter,
            )?
            .encode_counter::<NoLabelSet, _, u64>(&compile.compile_time.as_secs_f64(), None)?;
        PipelineMetrics::encode_all(&self.pipelines, &mut encoder)?;
        ConnectionState::encode_all(&self.connections, &mut encoder)?;
        self.reloads.encode(self.generation, &mut encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_and_buckets_are_counted_and_rendered() {
        let metrics = FunctionMetrics::new();
        let elapsed = Duration::from_micros(3);
        metrics.record(Outcome::Ok, elapsed);
        metrics.record(Outcome::Ok, elapsed);
        metrics.record(Outcome::Failed(ErrorKind::PoolFull), elapsed);
        metrics.record_refused(ErrorKind::Refused);
        let calls = metrics.snapshot();
        assert_eq!(calls.calls(), 4);
        assert_eq!(calls.succeeded(), 2);
        assert_eq!(calls.failed(ErrorKind::PoolFull), 1);
        assert_eq!(calls.failed(ErrorKind::Refused), 1);
        let snapshot = Snapshot {
            functions: vec![FunctionSnapshot {
                id: "t:f".into(),
                calls,
                pool: PoolStats::default(),
            }],
            compile: CompileStats::default(),
            pipelines: vec![Arc::new(PipelineMetrics::new("p", vec!["upper".into()]))],
            connections: vec![Arc::new(ConnectionState::new("nats", "pipeline p input"))],
            generation: 3,
            reloads: Arc::new(Reloads::default()),
        };
        snapshot.reloads.applied();
        snapshot.reloads.applied();
        snapshot.reloads.refused();
        snapshot.connections[0].connected();
        snapshot.connections[0].disconnected();
        snapshot.pipelines[0].add(MessageCount::Received, 5);
        snapshot.pipelines[0].add(MessageCount::Processed, 3);
        snapshot.pipelines[0].record_processor(0, Duration::from_micros(30), 3);
        let text = snapshot.render();
        assert!(
            text.contains(r#"wafer_pipeline_messages_total{pipeline="p",outcome="received"} 5"#),
            "{text}"
        );
        assert!(
            text.contains(r#"wafer_pipeline_messages_in_flight{pipeline="p"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"wafer_pipeline_processor_duration_seconds_count{pipeline="p",processor="upper"} 3"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"wafer_function_calls_total{function="t:f",outcome="ok"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"wafer_function_calls_total{function="t:f",outcome="pool_full"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"wafer_function_call_duration_seconds_count{function="t:f"} 3"#),
            "{text}"
        );
        assert!(text.contains("wafer_modules_compiled_total 0"), "{text}");
        let connection = r#"{broker="nats",component="pipeline p input"}"#;
        assert!(
            text.contains(&format!("wafer_broker_connected{connection} 0")),
            "{text}"
        );
        assert!(
            text.contains(&format!("wafer_broker_disconnects_total{connection} 1")),
            "{text}"
        );
        assert!(text.contains("wafer_registry_generation 3\n"), "{text}");
        assert!(
            text.contains(r#"wafer_reloads_total{outcome="applied"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"wafer_reloads_total{outcome="refused"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
