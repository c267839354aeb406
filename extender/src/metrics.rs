//! The extender's Prometheus metrics: requests by verb and result, their latency, and the size
//! of the state (nodes, tracked pods, pending reservations, assignments not yet countable).
//! The registry belongs to the state (no globals); `/metrics` encodes it.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tessera_core::cluster::Cluster;

/// Labels of a request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabels {
    /// `filter`, `prioritize`, `bind`, `preempt`.
    pub verb: String,
    /// `ok` or `error`.
    pub result: String,
}

/// Labels of a latency observation.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Verb {
    /// The verb.
    pub verb: String,
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// Every metric, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    requests: Family<VerbLabels, Counter>,
    latency: Family<Verb, Histogram, fn() -> Histogram>,
    binds: Family<Verb, Counter>,
    nodes: Gauge,
    pods: Gauge,
    holding: Gauge,
    reservations: Gauge,
    unplaced: Gauge,
    leader: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tessera_extender");
        let requests = Family::<VerbLabels, Counter>::default();
        registry.register(
            "requests",
            "Extender requests by verb and result",
            requests.clone(),
        );
        let latency = Family::<Verb, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "request_duration",
            "Time to answer a verb",
            prometheus_client::registry::Unit::Seconds,
            latency.clone(),
        );
        let binds = Family::<Verb, Counter>::default();
        registry.register(
            "binds",
            "Bind answers by result (verb label: ok or the failed step)",
            binds.clone(),
        );
        let nodes = Gauge::default();
        registry.register("nodes", "Nodes in the GPU ledger", nodes.clone());
        let pods = Gauge::default();
        registry.register(
            "tracked_pods",
            "Pods holding GPU shares or in a spreading group",
            pods.clone(),
        );
        let holding = Gauge::default();
        registry.register(
            "holding_pods",
            "Pods whose GPU shares the ledger counts (bound or reserved)",
            holding.clone(),
        );
        let reservations = Gauge::default();
        registry.register(
            "pending_reservations",
            "Shares reserved at bind and not yet seen bound by the watch",
            reservations.clone(),
        );
        let unplaced = Gauge::default();
        registry.register(
            "unplaced_assignments",
            "Pod GPU assignments that cannot be counted (unknown node or GPU, over-commit)",
            unplaced.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica leads (answers the verbs, removes stale assignments), 0 on a standby",
            leader.clone(),
        );
        Metrics {
            leader,
            registry,
            requests,
            latency,
            binds,
            nodes,
            pods,
            holding,
            reservations,
            unplaced,
        }
    }

    /// Records one answered request.
    pub fn observe(&self, verb: &str, ok: bool, seconds: f64) {
        self.requests
            .get_or_create(&VerbLabels {
                verb: verb.to_string(),
                result: if ok { "ok" } else { "error" }.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&Verb {
                verb: verb.to_string(),
            })
            .observe(seconds);
    }

    /// Records a bind's outcome: `ok`, `refused` (no fit, unknown pod) or `failed` (apiserver).
    pub fn bind_outcome(&self, outcome: &str) {
        self.binds
            .get_or_create(&Verb {
                verb: outcome.to_string(),
            })
            .inc();
    }

    /// Records whether this replica leads now.
    pub fn set_leader(&self, leads: bool) {
        self.leader.set(i64::from(leads));
    }

    /// The text exposition, with the state gauges taken from `cluster` now.
    pub fn encode(&self, cluster: &Cluster) -> String {
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.nodes.set(count(cluster.ledger.nodes().len()));
        self.pods.set(count(cluster.tracked_pods()));
        self.holding.set(count(cluster.ledger.pod_count()));
        self.reservations.set(count(cluster.reservations.len()));
        self.unplaced.set(count(cluster.unplaced_pods().len()));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
