//! Connections to message brokers: whether each is up, and how often it
//! was lost. A component that holds a connection (a NATS input, output or
//! function subject) registers it ([`Connections::register`], or
//! [`crate::Runtime::connection`]) and reports its state; `/readyz`
//! answers 503 while one is down.
//!
//! | series | type | labels |
//! |---|---|---|
//! | `wafer_broker_connected` | gauge (1 or 0) | `broker`, `component` |
//! | `wafer_broker_disconnects_total` | counter | `broker`, `component` |

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// The broker connections registered with a runtime and the generations
/// that follow it ([`crate::Runtime::successor`] shares them), each listed
/// while its component holds it. A component keeps this handle rather than
/// the runtime, so that it does not keep a generation alive.
#[derive(Debug, Clone, Default)]
pub struct Connections(Arc<RwLock<Vec<Weak<ConnectionState>>>>);

impl Connections {
    /// The state of a connection `component` holds to a `broker`, listed
    /// by [`Connections::all`] from now on, while the component holds it.
    /// Two of the same name may be held at once (a pipeline draining for
    /// a reload and its successor, or a generation being prepared): both
    /// are listed, and the metrics show the one registered last.
    pub fn register(&self, broker: &'static str, component: &str) -> Arc<ConnectionState> {
        let state = Arc::new(ConnectionState::new(broker, component));
        let mut connections = self.0.write().unwrap_or_else(|p| p.into_inner());
        connections.retain(|known| known.strong_count() > 0);
        connections.push(Arc::downgrade(&state));
        state
    }

    /// Every connection registered and still held.
    pub fn all(&self) -> Vec<Arc<ConnectionState>> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }
}

/// One component's connection to a broker.
#[derive(Debug)]
pub struct ConnectionState {
    broker: &'static str,
    component: String,
    connected: AtomicBool,
    disconnects: AtomicU64,
}

impl ConnectionState {
    /// A connection of `component` to a `broker` (`nats`), not connected
    /// yet.
    pub fn new(broker: &'static str, component: &str) -> ConnectionState {
        ConnectionState {
            broker,
            component: component.to_string(),
            connected: AtomicBool::new(false),
            disconnects: AtomicU64::new(0),
        }
    }

    /// The broker's kind.
    pub fn broker(&self) -> &'static str {
        self.broker
    }

    /// Who holds the connection: `pipeline NAME input`, an entry's id.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// The connection is up.
    pub fn connected(&self) {
        self.connected.store(true, Ordering::Relaxed);
    }

    /// The connection was lost (the client reconnects on its own).
    pub fn disconnected(&self) {
        if self.connected.swap(false, Ordering::Relaxed) {
            self.disconnects.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether the connection is up now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// How many times it was lost.
    pub fn disconnects(&self) -> u64 {
        self.disconnects.load(Ordering::Relaxed)
    }

    /// Renders every connection's series: of several under one name, the
    /// one registered last (the latest in `connections`).
    pub(crate) fn encode_all(
        connections: &[Arc<ConnectionState>],
        encoder: &mut DescriptorEncoder,
    ) -> std::fmt::Result {
        if connections.is_empty() {
            return Ok(());
        }
        let mut named = std::collections::HashSet::new();
        let mut latest: Vec<&ConnectionState> = connections
            .iter()
            .rev()
            .filter(|c| named.insert((c.broker, c.component.as_str())))
            .map(AsRef::as_ref)
            .collect();
        latest.reverse();
        let connections = latest;
        {
            let mut family = encoder.encode_descriptor(
                "wafer_broker_connected",
                "Whether a component's connection to its broker is up (1) or down (0).",
                None,
                MetricType::Gauge,
            )?;
            for connection in &connections {
                family
                    .encode_family(&connection.labels())?
                    .encode_gauge(&i64::from(connection.is_connected()))?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "wafer_broker_disconnects",
            "Times a component's connection to its broker was lost.",
            None,
            MetricType::Counter,
        )?;
        for connection in &connections {
            family
                .encode_family(&connection.labels())?
                .encode_counter::<NoLabelSet, _, u64>(&connection.disconnects(), None)?;
        }
        Ok(())
    }

    fn labels(&self) -> [(&str, &str); 2] {
        [("broker", self.broker), ("component", &self.component)]
    }
}
