//! A pipeline's figures: messages by what became of them, messages in
//! flight, and each processor's latency per message. The pipeline engine
//! counts them ([`crate::Runtime::pipeline_metrics`]); they render with
//! the runtime's other metrics.
//!
//! | series | type | labels |
//! |---|---|---|
//! | `wafer_pipeline_messages_total` | counter | `pipeline`, `outcome` (`received`, `processed`, `dropped`, `failed`, `dead_lettered`, `filtered`, `retried`) |
//! | `wafer_pipeline_messages_in_flight` | gauge | `pipeline` |
//! | `wafer_pipeline_processor_duration_seconds` | histogram | `pipeline`, `processor` |
//!
//! Counting is per batch, not per message: a few atomic additions per
//! batch, uncontended enough to need no shards.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::{BUCKETS_NS, bucket_bounds};

/// What became of messages, as a pipeline counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageCount {
    /// The input produced them.
    Received,
    /// The output confirmed them (flagged ones that went on included).
    Processed,
    /// Flagged, and dropped by `on_error: drop`.
    Dropped,
    /// A processor flagged them with an error.
    Failed,
    /// Flagged, and confirmed by the dead-letter output.
    DeadLettered,
    /// Left out by a processor on purpose (a Fluent Bit filter dropping a
    /// record): not a failure.
    Filtered,
    /// Flagged, and handed back to an input that redelivers them (a
    /// JetStream message with deliveries left): not written.
    Retried,
}

impl MessageCount {
    /// Every count, in rendering order.
    pub const ALL: [MessageCount; 7] = [
        MessageCount::Received,
        MessageCount::Processed,
        MessageCount::Dropped,
        MessageCount::Failed,
        MessageCount::DeadLettered,
        MessageCount::Filtered,
        MessageCount::Retried,
    ];

    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageCount::Received => "received",
            MessageCount::Processed => "processed",
            MessageCount::Dropped => "dropped",
            MessageCount::Failed => "failed",
            MessageCount::DeadLettered => "dead_lettered",
            MessageCount::Filtered => "filtered",
            MessageCount::Retried => "retried",
        }
    }
}

/// One pipeline's counters.
#[derive(Debug)]
pub struct PipelineMetrics {
    name: String,
    /// Shared with the metrics that continue these
    /// ([`PipelineMetrics::continued`]).
    counts: Arc<[AtomicU64; MessageCount::ALL.len()]>,
    processors: Vec<ProcessorLatency>,
}

/// One processor's latency per message.
#[derive(Debug)]
struct ProcessorLatency {
    name: String,
    /// Messages per latency bucket; the last counts those above every bound.
    buckets: [AtomicU64; BUCKETS_NS.len() + 1],
    total_ns: AtomicU64,
}

impl PipelineMetrics {
    /// Counters for pipeline `name` whose processors are `processors`, in
    /// order.
    pub fn new(name: &str, processors: Vec<String>) -> PipelineMetrics {
        PipelineMetrics {
            name: name.to_string(),
            counts: Default::default(),
            processors: latencies(processors),
        }
    }

    /// Counters for the same pipeline with other `processors` (a reload
    /// changed them): the message counts are these very ones and go on
    /// counting together; the processors' latencies start afresh.
    pub fn continued(&self, processors: Vec<String>) -> PipelineMetrics {
        PipelineMetrics {
            name: self.name.clone(),
            counts: self.counts.clone(),
            processors: latencies(processors),
        }
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds `n` messages to `count`.
    pub fn add(&self, count: MessageCount, n: u64) {
        self.counts[count as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// The messages counted as `count` so far.
    pub fn get(&self, count: MessageCount) -> u64 {
        self.counts[count as usize].load(Ordering::Relaxed)
    }

    /// Messages received and not yet written, dropped, dead-lettered,
    /// filtered or handed back for redelivery.
    pub fn in_flight(&self) -> u64 {
        let done = self.get(MessageCount::Processed)
            + self.get(MessageCount::Dropped)
            + self.get(MessageCount::DeadLettered)
            + self.get(MessageCount::Filtered)
            + self.get(MessageCount::Retried);
        self.get(MessageCount::Received).saturating_sub(done)
    }

    /// Counts `messages` that processor `index` took `elapsed` for
    /// together (a batch): each counts as the batch's average.
    pub fn record_processor(&self, index: usize, elapsed: Duration, messages: u64) {
        let Some(processor) = self.processors.get(index) else {
            return;
        };
        if messages == 0 {
            return;
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_NS.partition_point(|&bound| bound < nanos / messages);
        processor.buckets[bucket].fetch_add(messages, Ordering::Relaxed);
        processor.total_ns.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Renders every pipeline's series into the three families.
    pub(crate) fn encode_all(
        pipelines: &[Arc<PipelineMetrics>],
        encoder: &mut DescriptorEncoder,
    ) -> std::fmt::Result {
        {
            let mut family = encoder.encode_descriptor(
                "wafer_pipeline_messages",
                "Messages by pipeline and what became of them.",
                None,
                MetricType::Counter,
            )?;
            for pipeline in pipelines {
                for count in MessageCount::ALL {
                    let labels = [("pipeline", pipeline.name()), ("outcome", count.as_str())];
                    family
                        .encode_family(&labels)?
                        .encode_counter::<NoLabelSet, _, u64>(&pipeline.get(count), None)?;
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "wafer_pipeline_messages_in_flight",
                "Messages received and not yet written, dropped or dead-lettered.",
                None,
                MetricType::Gauge,
            )?;
            for pipeline in pipelines {
                family
                    .encode_family(&[("pipeline", pipeline.name())])?
                    .encode_gauge(&(pipeline.in_flight() as i64))?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "wafer_pipeline_processor_duration",
            "Time a processor took per message (its batch's average).",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for pipeline in pipelines {
            for processor in &pipeline.processors {
                let buckets: Vec<u64> = processor
                    .buckets
                    .iter()
                    .map(|b| b.load(Ordering::Relaxed))
                    .collect();
                let total = processor.total_ns.load(Ordering::Relaxed) as f64 / 1e9;
                family
                    .encode_family(&[
                        ("pipeline", pipeline.name()),
                        ("processor", processor.name.as_str()),
                    ])?
                    .encode_histogram::<NoLabelSet>(
                        total,
                        buckets.iter().sum(),
                        &bucket_bounds(&buckets),
                        None,
                    )?;
            }
        }
        Ok(())
    }
}

fn latencies(processors: Vec<String>) -> Vec<ProcessorLatency> {
    processors
        .into_iter()
        .map(|name| ProcessorLatency {
            name,
            buckets: Default::default(),
            total_ns: AtomicU64::new(0),
        })
        .collect()
}
