//! The MPS daemon's Prometheus metrics, registered into a registry the caller owns (STYLE.md 7).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Outcome of a health check.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `failed`.
    pub result: String,
}

/// Every metric of the MPS daemon.
#[derive(Clone)]
pub struct Metrics {
    /// 1 while the control daemon answers and the status file is published.
    pub ready: Gauge,
    /// GPUs held in EXCLUSIVE_PROCESS mode behind MPS.
    pub gpus: Gauge,
    /// Restarts of the control daemon.
    pub restarts: Counter,
    /// Health checks by result.
    pub checks: Family<ResultLabel, Counter>,
}

impl Metrics {
    /// New metrics registered under `tessera_mps_`.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            ready: Gauge::default(),
            gpus: Gauge::default(),
            restarts: Counter::default(),
            checks: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("tessera_mps");
        r.register(
            "ready",
            "1 while the MPS control daemon answers and shares on its GPUs are isolated",
            m.ready.clone(),
        );
        r.register(
            "gpus",
            "GPUs held in EXCLUSIVE_PROCESS mode behind MPS",
            m.gpus.clone(),
        );
        r.register(
            "restarts",
            "Restarts of the MPS control daemon (each ends the GPU processes it served)",
            m.restarts.clone(),
        );
        r.register(
            "health_checks",
            "get_server_list health checks by result",
            m.checks.clone(),
        );
        m
    }

    /// Counts one health check.
    pub fn check(&self, result: &str) {
        self.checks
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }
}
