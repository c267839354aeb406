//! What an operator watches per node and GPU model: GPUs, allocated memory and compute, the
//! fragmentation measure, how many GPUs have live isolation, and the inventory heartbeat. The
//! extender exports it as gauges; it is computed from the state on each scrape.

use std::collections::BTreeMap;

use crate::frag::NodeFrag;
use crate::inventory::Isolation;
use crate::request::MILLI_PER_GPU;

use super::Cluster;

/// One node's GPUs of one model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelUsage {
    /// Node name.
    pub node: String,
    /// GPU model as the inventory names it.
    pub model: String,
    /// GPUs of this model on the node.
    pub gpus: u32,
    /// Of them, healthy (offered).
    pub healthy: u32,
    /// Their memory, MiB.
    pub mem_total_mib: u64,
    /// Memory handed out to shares and whole GPUs, MiB.
    pub mem_allocated_mib: u64,
    /// Compute handed out, in thousandths of a GPU.
    pub compute_allocated_milli: u64,
    /// The node's expected fragmentation (the FGD measure against the typical mix), in
    /// thousandths of a GPU, for the GPUs of this model.
    pub fragmented_milli: f64,
    /// GPUs by live isolation: none, MPS (one user), MPS (multi-user).
    pub isolation: IsolationCounts,
}

/// GPUs by the isolation the device plugin reports live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IsolationCounts {
    /// Nothing enforces shares.
    pub none: u32,
    /// A single-user MPS server.
    pub mps: u32,
    /// A multi-user MPS server.
    pub mps_multi_user: u32,
}

impl IsolationCounts {
    /// (label, count) pairs, for metrics and tables.
    pub fn labelled(&self) -> [(&'static str, u32); 3] {
        [
            ("none", self.none),
            ("mps", self.mps),
            ("mps-multi-user", self.mps_multi_user),
        ]
    }

    fn add(&mut self, isolation: Isolation) {
        match isolation {
            Isolation::None => self.none += 1,
            Isolation::Mps => self.mps += 1,
            Isolation::MpsMultiUser => self.mps_multi_user += 1,
        }
    }
}

impl Cluster {
    /// Usage per node and GPU model, sorted by node then model.
    pub fn usage(&self) -> Vec<ModelUsage> {
        let mut out = Vec::new();
        for node in self.ledger.nodes() {
            let facts = self.nodes.get(&node.name);
            let isolation_of = |uuid: &str| {
                facts
                    .and_then(|f| f.inventory.gpus.iter().find(|g| g.uuid == uuid))
                    .map_or(Isolation::None, |g| g.isolation)
            };
            let frag = match self.frag.get(node) {
                Some(cached) => cached.frag.frag.published,
                None => NodeFrag::new(node, &self.mix).view().frag.published,
            };
            let idle_total: u64 = node
                .gpus
                .iter()
                .filter(|g| g.healthy)
                .map(|g| u64::from(g.core_free))
                .sum();
            let mut models: BTreeMap<&str, ModelUsage> = BTreeMap::new();
            for gpu in &node.gpus {
                let m = models
                    .entry(gpu.ident.model.as_str())
                    .or_insert_with(|| ModelUsage {
                        node: node.name.clone(),
                        model: gpu.ident.model.clone(),
                        ..ModelUsage::default()
                    });
                m.gpus += 1;
                m.healthy += u32::from(gpu.healthy);
                m.mem_total_mib += gpu.mem_total_mib;
                m.mem_allocated_mib += gpu.mem_total_mib.saturating_sub(gpu.mem_free_mib);
                m.compute_allocated_milli +=
                    u64::from(MILLI_PER_GPU.saturating_sub(gpu.core_free.min(MILLI_PER_GPU)));
                m.isolation.add(isolation_of(&gpu.ident.uuid));
                // The measure is the node's: share it among models by their idle compute.
                if gpu.healthy && idle_total > 0 {
                    m.fragmented_milli += frag * f64::from(gpu.core_free) / idle_total as f64;
                }
            }
            out.extend(models.into_values());
        }
        out.sort_by(|a, b| (&a.node, &a.model).cmp(&(&b.node, &b.model)));
        out
    }

    /// Seconds since each node's last inventory heartbeat at `now_secs`, for nodes that have
    /// GPUs and have reported one, sorted by node.
    pub fn heartbeat_ages(&self, now_secs: i64) -> Vec<(String, i64)> {
        let mut ages: Vec<(String, i64)> = self
            .nodes
            .values()
            .filter(|f| !f.inventory.gpus.is_empty())
            .filter_map(|f| Some((f.name.clone(), now_secs - f.heartbeat?)))
            .collect();
        ages.sort();
        ages
    }
}
