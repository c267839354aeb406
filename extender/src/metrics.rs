//! The extender's Prometheus metrics: requests by verb and result, their latency, and the size
//! of the state (nodes, tracked pods, pending reservations, assignments not yet countable), and
//! per node and GPU model: allocation, fragmentation, live isolation and heartbeat age.
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

/// Labels of a node's GPUs of one model.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    /// Node name.
    pub node: String,
    /// GPU model.
    pub model: String,
}

/// Labels of a node's GPUs of one model with one live isolation.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IsolationLabels {
    /// Node name.
    pub node: String,
    /// GPU model.
    pub model: String,
    /// `none`, `mps` or `mps-multi-user`.
    pub isolation: String,
}

/// Labels of a node.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabel {
    /// Node name.
    pub node: String,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// Per node and GPU model gauges, refilled from the state on each scrape.
#[derive(Default)]
struct GpuGauges {
    gpus: Family<ModelLabels, Gauge>,
    healthy: Family<ModelLabels, Gauge>,
    memory: Family<ModelLabels, Gauge>,
    memory_allocated: Family<ModelLabels, Gauge>,
    compute_allocated: Family<ModelLabels, FloatGauge>,
    fragmented: Family<ModelLabels, FloatGauge>,
    isolation: Family<IsolationLabels, Gauge>,
    heartbeat_age: Family<NodeLabel, Gauge>,
}

impl GpuGauges {
    fn register(&self, registry: &mut Registry) {
        registry.register("node_gpus", "GPUs per node and model", self.gpus.clone());
        registry.register(
            "node_gpus_healthy",
            "Healthy (offered) GPUs per node and model",
            self.healthy.clone(),
        );
        registry.register(
            "node_gpu_memory_bytes",
            "GPU memory per node and model",
            self.memory.clone(),
        );
        registry.register(
            "node_gpu_memory_allocated_bytes",
            "GPU memory handed out to shares and whole GPUs per node and model",
            self.memory_allocated.clone(),
        );
        registry.register(
            "node_gpu_compute_allocated_gpus",
            "GPU compute handed out per node and model, in GPUs (1 = all SMs of one GPU)",
            self.compute_allocated.clone(),
        );
        registry.register(
            "node_gpu_fragmented_gpus",
            "Expected idle GPU compute the typical pod mix cannot use (FGD measure), in GPUs",
            self.fragmented.clone(),
        );
        registry.register(
            "node_gpus_by_isolation",
            "GPUs per node and model by the isolation the device plugin reports live",
            self.isolation.clone(),
        );
        registry.register(
            "node_heartbeat_age_seconds",
            "Age of each GPU node's inventory heartbeat",
            self.heartbeat_age.clone(),
        );
    }

    fn fill(&self, cluster: &Cluster, now_secs: i64) {
        const MIB: i64 = 1 << 20;
        self.gpus.clear();
        self.healthy.clear();
        self.memory.clear();
        self.memory_allocated.clear();
        self.compute_allocated.clear();
        self.fragmented.clear();
        self.isolation.clear();
        self.heartbeat_age.clear();
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for u in cluster.usage() {
            let l = ModelLabels {
                node: u.node.clone(),
                model: u.model.clone(),
            };
            self.gpus.get_or_create(&l).set(i64::from(u.gpus));
            self.healthy.get_or_create(&l).set(i64::from(u.healthy));
            self.memory
                .get_or_create(&l)
                .set(int(u.mem_total_mib).saturating_mul(MIB));
            self.memory_allocated
                .get_or_create(&l)
                .set(int(u.mem_allocated_mib).saturating_mul(MIB));
            self.compute_allocated
                .get_or_create(&l)
                .set(u.compute_allocated_milli as f64 / 1000.0);
            self.fragmented
                .get_or_create(&l)
                .set(u.fragmented_milli / 1000.0);
            for (isolation, n) in u.isolation.labelled() {
                let l = IsolationLabels {
                    node: u.node.clone(),
                    model: u.model.clone(),
                    isolation: isolation.to_string(),
                };
                self.isolation.get_or_create(&l).set(i64::from(n));
            }
        }
        for (node, age) in cluster.heartbeat_ages(now_secs) {
            self.heartbeat_age
                .get_or_create(&NodeLabel { node })
                .set(age);
        }
    }
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
    gpu: GpuGauges,
    refusals: tessera_serve::Refusals,
    cert_expiry: Family<CertLabel, Gauge>,
    cert_not_after: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Which certificate an expiry is about.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertLabel {
    /// `serving`.
    pub certificate: &'static str,
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
    /// Where the server counts what it refused (`tessera_extender_refused_total{reason}`).
    pub fn refusals(&self) -> tessera_serve::Refusals {
        self.refusals.clone()
    }

    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("tessera_extender");
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
        let gpu = GpuGauges::default();
        gpu.register(registry);
        let refusals = tessera_serve::Refusals::register(registry);
        let cert_expiry = Family::<CertLabel, Gauge>::default();
        registry.register(
            "tls_cert_expiry_seconds",
            "Seconds until the serving certificate expires (no series when serving plain HTTP)",
            cert_expiry.clone(),
        );
        Metrics {
            gpu,
            leader,
            refusals,
            registry: root,
            cert_expiry,
            cert_not_after: Default::default(),
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

    /// Registers `register`'s metrics at the root of the registry, outside the extender's
    /// prefix (`tessera_build_info`).
    pub fn register_root(&mut self, register: impl FnOnce(&mut Registry)) {
        register(&mut self.registry);
    }

    /// Where the serving certificate's notAfter (Unix seconds) is kept; the TLS reloader
    /// writes it, each scrape turns it into seconds left.
    pub fn cert_not_after(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.cert_not_after.clone()
    }

    /// Records whether this replica leads now.
    pub fn set_leader(&self, leads: bool) {
        self.leader.set(i64::from(leads));
    }

    /// The OpenMetrics exposition, with the state gauges taken from `cluster` at `now_secs`
    /// (Unix seconds, for heartbeat ages).
    pub fn encode(&self, cluster: &Cluster, now_secs: i64) -> String {
        self.gpu.fill(cluster, now_secs);
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.nodes.set(count(cluster.ledger.nodes().len()));
        self.pods.set(count(cluster.tracked_pods()));
        self.holding.set(count(cluster.ledger.pod_count()));
        self.reservations.set(count(cluster.reservations.len()));
        self.unplaced.set(count(cluster.unplaced_pods().len()));
        let not_after = self
            .cert_not_after
            .load(std::sync::atomic::Ordering::Relaxed);
        if not_after > 0 {
            let left = i64::try_from(not_after).unwrap_or(i64::MAX) - now_secs;
            self.cert_expiry
                .get_or_create(&CertLabel {
                    certificate: "serving",
                })
                .set(left);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
