//! The device plugin's Prometheus metrics, registered into a registry the caller owns
//! (STYLE.md 7). GPU labels are UUIDs: bounded by the GPUs of one node.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A GPU label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GpuLabel {
    /// GPU UUID.
    pub gpu: String,
}

/// An XID event label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct XidLabel {
    /// GPU UUID.
    pub gpu: String,
    /// `true` when the XID marks the GPU unhealthy.
    pub critical: String,
}

/// Why an RPC failed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Bounded reason (see `PluginError::kind`).
    pub reason: String,
}

/// Every metric of the device plugin.
#[derive(Clone)]
pub struct Metrics {
    /// GPU memory in use, bytes.
    pub memory_used: Family<GpuLabel, Gauge>,
    /// GPU memory total, bytes.
    pub memory_total: Family<GpuLabel, Gauge>,
    /// GPU utilisation, 0 to 1.
    pub utilization: Family<GpuLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// 1 when the GPU is offered, 0 when unhealthy.
    pub healthy: Family<GpuLabel, Gauge>,
    /// Shares assigned on each GPU by pods on this node.
    pub shares_assigned: Family<GpuLabel, Gauge>,
    /// XID events seen.
    pub xid_events: Family<XidLabel, Counter>,
    /// Allocate calls that failed.
    pub allocate_errors: Family<ReasonLabel, Counter>,
    /// Allocate latency.
    pub allocate_duration: Histogram,
    /// `gpu-assignment` annotations corrected from PodResources.
    pub corrections: Counter,
    /// Successful registrations with the kubelet.
    pub registrations: Counter,
    /// 1 while the MPS daemon's status is fresh (isolation live), 0 otherwise.
    pub mps_ready: Gauge,
    /// 1 while the kubelet knows our current socket.
    pub registered: Gauge,
}

impl Metrics {
    /// New metrics registered under `tessera_device_plugin_`.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            memory_used: Family::default(),
            memory_total: Family::default(),
            utilization: Family::default(),
            healthy: Family::default(),
            shares_assigned: Family::default(),
            xid_events: Family::default(),
            allocate_errors: Family::default(),
            allocate_duration: Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
            ]),
            corrections: Counter::default(),
            registrations: Counter::default(),
            mps_ready: Gauge::default(),
            registered: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("tessera_device_plugin");
        r.register(
            "gpu_memory_used_bytes",
            "GPU memory in use",
            m.memory_used.clone(),
        );
        r.register(
            "gpu_memory_total_bytes",
            "GPU memory total",
            m.memory_total.clone(),
        );
        r.register(
            "gpu_utilization_ratio",
            "Share of time a kernel ran on the GPU over NVML's last sample period (0 to 1)",
            m.utilization.clone(),
        );
        r.register(
            "gpu_healthy",
            "1 when the GPU's slots are offered",
            m.healthy.clone(),
        );
        r.register(
            "gpu_shares_assigned",
            "Shares assigned on the GPU",
            m.shares_assigned.clone(),
        );
        r.register("xid_events", "NVML XID events", m.xid_events.clone());
        r.register(
            "allocate_errors",
            "Failed Allocate calls",
            m.allocate_errors.clone(),
        );
        r.register(
            "allocate_duration_seconds",
            "Allocate latency",
            m.allocate_duration.clone(),
        );
        r.register(
            "assignment_corrections",
            "gpu-assignment corrections from PodResources",
            m.corrections.clone(),
        );
        r.register(
            "registrations",
            "Registrations with the kubelet",
            m.registrations.clone(),
        );
        r.register(
            "registered",
            "1 while the kubelet has accepted the registration of the socket served now",
            m.registered.clone(),
        );
        r.register(
            "mps_ready",
            "1 while the MPS daemon reports ready with a fresh heartbeat (shares isolated)",
            m.mps_ready.clone(),
        );
        m
    }

    /// Sets the GPU gauges from NVML figures.
    pub fn set_usage(&self, usage: &[crate::nvml::GpuUsage]) {
        for u in usage {
            let l = GpuLabel {
                gpu: u.uuid.clone(),
            };
            self.memory_used.get_or_create(&l).set(u.used_bytes as i64);
            self.memory_total
                .get_or_create(&l)
                .set(u.total_bytes as i64);
            self.utilization
                .get_or_create(&l)
                .set(f64::from(u.util_percent) / 100.0);
        }
    }
}
