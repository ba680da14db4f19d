//! What the runtime's metrics show: its functions' calls, and what
//! registers with it, pipelines' counters and broker connections.

use std::sync::Arc;

use super::{Runtime, Slot};
use crate::metrics::{ConnectionState, Connections, FunctionSnapshot, PipelineMetrics, Snapshot};

impl Runtime {
    /// Every metric in the Prometheus text format, OpenMetrics flavour
    /// (ending in `# EOF`; serve it as `application/openmetrics-text;
    /// version=1.0.0; charset=utf-8`): per function, calls by outcome, their
    /// latency, instances and queue depth; per runtime, compiling and the
    /// cache (see [`crate::metrics`]).
    pub fn metrics_text(&self) -> String {
        let slots: Vec<(String, Arc<Slot>)> = self
            .slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, slot)| (id.clone(), slot.clone()))
            .collect();
        let mut functions: Vec<FunctionSnapshot> = slots
            .into_iter()
            .map(|(id, slot)| FunctionSnapshot {
                calls: slot.metrics.snapshot(),
                pool: match slot.loaded.get() {
                    Some(Ok(function)) => function.pool_stats(),
                    _ => Default::default(),
                },
                id,
            })
            .collect();
        functions.sort_by(|a, b| a.id.cmp(&b.id));
        Snapshot {
            functions,
            compile: self.compiler.stats(),
            pipelines: self
                .pipelines
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            connections: self.connections(),
            generation: self.generation,
            reloads: self.reloads.clone(),
        }
        .render()
    }

    /// The state of a connection `component` holds to a `broker`,
    /// rendered by [`Runtime::metrics_text`] and listed by
    /// [`Runtime::connections`] from now on ([`Connections::register`]).
    pub fn connection(&self, broker: &'static str, component: &str) -> Arc<ConnectionState> {
        self.connections.register(broker, component)
    }

    /// Where components register their broker connections, shared with
    /// the generations that follow this one: a component keeps it rather
    /// than the runtime.
    pub fn connection_registry(&self) -> Connections {
        self.connections.clone()
    }

    /// Every broker connection registered (by this generation or another
    /// one of the same run) and still held: `/readyz` is ready while all
    /// are up.
    pub fn connections(&self) -> Vec<Arc<ConnectionState>> {
        self.connections.all()
    }

    /// The counters of every pipeline registered (and carried by
    /// [`Runtime::successor`]).
    pub fn pipelines(&self) -> Vec<Arc<PipelineMetrics>> {
        self.pipelines
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Counters for a pipeline named `name` with `processors`, rendered by
    /// [`Runtime::metrics_text`] from now on (a pipeline built again under
    /// the same name replaces its counters).
    pub fn pipeline_metrics(&self, name: &str, processors: Vec<String>) -> Arc<PipelineMetrics> {
        let metrics = Arc::new(PipelineMetrics::new(name, processors));
        let mut pipelines = self.pipelines.write().unwrap_or_else(|p| p.into_inner());
        pipelines.retain(|known| known.name() != name);
        pipelines.push(metrics.clone());
        metrics
    }

    /// Counters for pipeline `name` whose processors a reload changed:
    /// its message counts go on from those registered under `name` (see
    /// [`PipelineMetrics::continued`]), which these replace; new counters
    /// when there are none.
    pub fn continued_pipeline_metrics(
        &self,
        name: &str,
        processors: Vec<String>,
    ) -> Arc<PipelineMetrics> {
        let mut pipelines = self.pipelines.write().unwrap_or_else(|p| p.into_inner());
        let metrics = Arc::new(match pipelines.iter().find(|known| known.name() == name) {
            Some(running) => running.continued(processors),
            None => PipelineMetrics::new(name, processors),
        });
        pipelines.retain(|known| known.name() != name);
        pipelines.push(metrics.clone());
        metrics
    }
}
