//! The device plugin's Prometheus metrics, registered into a registry the caller owns
//! (STYLE.md 7). GPU labels are UUIDs with the node's name: bounded by the GPUs of one node.
//!
//! The per-container series (issue 31) carry namespace, pod and container names, which STYLE.md
//! 7 otherwise keeps out of labels: an operator must see which share is over its limit, as HAMi
//! and dcgm-exporter show. They stay bounded by the share containers running on this node
//! (slots per GPU times GPUs) because a container's series are removed when it is gone.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use tessera_core::plugin::accounting::ContainerUsage;

/// A GPU label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GpuLabel {
    /// Node name (a scrape's target labels name the plugin's pod, not its node).
    pub node: String,
    /// GPU UUID.
    pub gpu: String,
}

impl GpuLabel {
    /// The label of `gpu` on `node`.
    pub fn new(node: &str, gpu: &str) -> Self {
        Self {
            node: node.to_string(),
            gpu: gpu.to_string(),
        }
    }
}

/// One container's share of one GPU.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct ContainerLabel {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
    /// Node name.
    pub node: String,
    /// GPU UUID.
    pub gpu: String,
}

/// A resource another device plugin advertises.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabel {
    /// Extended resource name (`nvidia.com/gpu`).
    pub resource: String,
}

/// An XID event label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct XidLabel {
    /// Node name.
    pub node: String,
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
    /// GPU memory held by each share container's processes, bytes.
    pub container_memory_used: Family<ContainerLabel, Gauge>,
    /// Each share container's memory limit, bytes.
    pub container_memory_limit: Family<ContainerLabel, Gauge>,
    /// SM utilisation of each share container's processes, 0 to 1.
    pub container_sm: Family<ContainerLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// 1 while another device plugin advertises this node's GPUs as the resource.
    pub conflict: Family<ResourceLabel, Gauge>,
    /// Container series set by the last accounting pass, to remove those that are gone.
    containers: Arc<Mutex<BTreeSet<ContainerLabel>>>,
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
            container_memory_used: Family::default(),
            container_memory_limit: Family::default(),
            container_sm: Family::default(),
            conflict: Family::default(),
            containers: Arc::default(),
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
        m.register_accounting(r);
        m
    }

    fn register_accounting(&self, r: &mut Registry) {
        r.register(
            "container_gpu_memory_used_bytes",
            "GPU memory held by the processes of a container holding a Tessera share",
            self.container_memory_used.clone(),
        );
        r.register(
            "container_gpu_memory_limit_bytes",
            "GPU memory of the container's share (tessera.dev/gpu-assignment)",
            self.container_memory_limit.clone(),
        );
        r.register(
            "container_gpu_sm_utilization_ratio",
            "SM utilisation of the container's processes over NVML's last sample (0 to 1)",
            self.container_sm.clone(),
        );
        r.register(
            "conflict",
            "1 while another device plugin advertises this node's GPUs as the resource; the node then offers no share",
            self.conflict.clone(),
        );
    }

    /// Sets the per-container series from one accounting pass on `node`, and removes the series
    /// of containers no longer in it.
    pub fn set_containers(&self, node: &str, usage: &[ContainerUsage]) {
        let mut seen = BTreeSet::new();
        for u in usage {
            let l = ContainerLabel {
                namespace: u.namespace.clone(),
                pod: u.pod.clone(),
                container: u.container.clone(),
                node: node.to_string(),
                gpu: u.gpu.clone(),
            };
            self.container_memory_used
                .get_or_create(&l)
                .set(u.used_bytes as i64);
            self.container_memory_limit
                .get_or_create(&l)
                .set(u.limit_bytes as i64);
            match u.sm_ratio {
                Some(r) => {
                    self.container_sm.get_or_create(&l).set(r);
                }
                None => {
                    self.container_sm.remove(&l);
                }
            }
            seen.insert(l);
        }
        let Ok(mut last) = self.containers.lock() else {
            return;
        };
        for gone in last.difference(&seen) {
            self.container_memory_used.remove(gone);
            self.container_memory_limit.remove(gone);
            self.container_sm.remove(gone);
        }
        *last = seen;
    }

    /// Sets the GPU gauges of `node` from NVML figures.
    pub fn set_usage(&self, node: &str, usage: &[crate::nvml::GpuUsage]) {
        for u in usage {
            let l = GpuLabel::new(node, &u.uuid);
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
