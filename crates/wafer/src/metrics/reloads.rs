//! The registry generation a process serves and how its reloads went:
//! `wafer_registry_generation` (a gauge, 1 at the start) and
//! `wafer_reloads_total{outcome}` (`applied`, `refused`).

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// Reloads applied and refused, shared by every generation of a process
/// ([`crate::Runtime::successor`] hands it on).
#[derive(Debug, Default)]
pub struct Reloads {
    applied: AtomicU64,
    refused: AtomicU64,
}

impl Reloads {
    /// A new generation took over.
    pub fn applied(&self) {
        self.applied.fetch_add(1, Ordering::Relaxed);
    }

    /// A new generation had problems; the running one goes on.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// How many were applied.
    pub fn applied_count(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    /// How many were refused.
    pub fn refused_count(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Renders the generation and the reload counters.
    pub(crate) fn encode(
        &self,
        generation: u64,
        encoder: &mut DescriptorEncoder,
    ) -> std::fmt::Result {
        encoder
            .encode_descriptor(
                "wafer_registry_generation",
                "The registry generation being served: 1 at the start, one more per reload applied.",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&(generation as i64))?;
        let mut family = encoder.encode_descriptor(
            "wafer_reloads",
            "Reloads of the registry by outcome: applied, or refused for its problems.",
            None,
            MetricType::Counter,
        )?;
        for (outcome, count) in [
            ("applied", self.applied_count()),
            ("refused", self.refused_count()),
        ] {
            family
                .encode_family(&[("outcome", outcome)])?
                .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
        }
        Ok(())
    }
}
