//! One node's accounting: per GPU the memory (MiB), compute (thousandths) and slots still free,
//! plus, when tracked, host CPU and memory; and which pod holds which share.
//!
//! Changes go through `apply` and `release` only, each all-or-nothing: a placement that would
//! over-commit anything is refused and leaves the node as it was.

use std::collections::BTreeMap;

use crate::inventory::NodeInventory;
use crate::request::{MILLI_PER_GPU, RunAs};

use super::sharing::{Sharing, SharingPolicy};
use super::{LedgerError, Placement};

/// Which physical GPU a [`GpuState`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuIdentity {
    /// NVML UUID.
    pub uuid: String,
    /// Model name.
    pub model: String,
}

/// Free and total resources of one physical GPU.
///
/// Scoring reads the numbers of every GPU of every node per decision, so they are kept in
/// 40 bytes (a node of 8 GPUs in 5 cache lines) and the identity, read far less often, is boxed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuState {
    /// UUID and model.
    pub ident: Box<GpuIdentity>,
    /// Total memory, MiB.
    pub mem_total_mib: u64,
    /// Unreserved memory, MiB.
    pub mem_free_mib: u64,
    /// Unreserved compute, thousandths of the GPU.
    pub core_free: u32,
    /// Device-plugin slots still free (each share uses one).
    pub slots_free: u32,
    /// Slots advertised for this GPU.
    pub slots_total: u32,
    /// Healthy GPUs take new shares; unhealthy ones keep their holders' accounting.
    pub healthy: bool,
    /// Which shares it may take, from its isolation (in the padding: the struct stays 40 bytes).
    pub sharing: Sharing,
}

impl GpuState {
    /// True when nothing is reserved on the GPU.
    pub fn is_idle(&self) -> bool {
        self.core_free == MILLI_PER_GPU
            && self.mem_free_mib == self.mem_total_mib
            && self.slots_free == self.slots_total
    }
}

/// Host CPU (millicores) and memory (MiB); `None` means kube-scheduler accounts it, not us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostCapacity {
    /// Allocatable CPU in millicores.
    pub cpu_milli: Option<u64>,
    /// Allocatable memory in MiB.
    pub mem_mib: Option<u64>,
}

impl HostCapacity {
    /// Host resources not accounted (the extender's case).
    pub fn untracked() -> Self {
        HostCapacity {
            cpu_milli: None,
            mem_mib: None,
        }
    }
}

/// What one pod holds on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    /// GPU shares by GPU index.
    pub placement: Placement,
    /// Host CPU in millicores.
    pub cpu_milli: u64,
    /// Host memory in MiB.
    pub mem_mib: u64,
    /// The user its GPU containers run as.
    pub run_as: RunAs,
}

/// The accounting of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLedger {
    /// Node name.
    pub name: String,
    /// `topology.kubernetes.io/zone`, if labelled.
    pub zone: Option<String>,
    /// GPUs in index order.
    pub gpus: Vec<GpuState>,
    /// Host capacity, when tracked.
    pub host: HostCapacity,
    /// Free host CPU, millicores (meaningful when tracked).
    pub cpu_free_milli: u64,
    /// Free host memory, MiB (meaningful when tracked).
    pub mem_free_mib: u64,
    pub(super) holders: BTreeMap<String, Holding>,
    /// See [`NodeLedger::mps_user`].
    pub(super) mps_user: Option<RunAs>,
    /// Some GPU is behind a single-user MPS server (worked out once: fit asks per node).
    pub(super) single_user_mps: bool,
    /// Every GPU is the same model with the same memory (worked out once: scoring asks per node).
    gpus_alike: bool,
    /// Renewed on every change from a counter shared by all ledgers, so a cache entry stamped
    /// with it can never be taken for another node's state or a later one of this node.
    pub version: u64,
    /// Position in the owning [`super::ClusterLedger`] (0 for a node outside one): per-node
    /// caches are vectors indexed by it, checked by `version`.
    pub(super) slot: usize,
}

/// A version no node state has had yet.
pub fn next_version() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl NodeLedger {
    /// An empty ledger for a node with `inventory`, `slots_per_gpu` slots on each GPU, placing
    /// fractional shares by `policy`.
    pub fn new(
        name: &str,
        zone: Option<String>,
        inventory: &NodeInventory,
        host: HostCapacity,
        slots_per_gpu: u32,
        policy: SharingPolicy,
    ) -> Self {
        let single_user_mps = inventory
            .gpus
            .iter()
            .any(|g| Sharing::of(g.isolation, policy) == Sharing::OneUser);
        let gpus_alike = inventory
            .gpus
            .windows(2)
            .all(|w| w[0].model == w[1].model && w[0].memory_mib == w[1].memory_mib);
        NodeLedger {
            name: name.to_string(),
            zone,
            gpus: inventory
                .gpus
                .iter()
                .map(|g| GpuState {
                    ident: Box::new(GpuIdentity {
                        uuid: g.uuid.clone(),
                        model: g.model.clone(),
                    }),
                    mem_total_mib: g.memory_mib,
                    mem_free_mib: g.memory_mib,
                    core_free: MILLI_PER_GPU,
                    slots_free: slots_per_gpu,
                    slots_total: slots_per_gpu,
                    healthy: g.healthy,
                    sharing: Sharing::of(g.isolation, policy),
                })
                .collect(),
            host,
            cpu_free_milli: host.cpu_milli.unwrap_or(u64::MAX),
            mem_free_mib: host.mem_mib.unwrap_or(u64::MAX),
            holders: BTreeMap::new(),
            mps_user: None,
            single_user_mps,
            gpus_alike,
            version: next_version(),
            slot: 0,
        }
    }

    /// Position in the owning cluster ledger (0 outside one).
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// True when every GPU is the same model with the same memory.
    pub fn gpus_alike(&self) -> bool {
        self.gpus_alike
    }

    /// Pods holding shares here, by key.
    pub fn holders(&self) -> &BTreeMap<String, Holding> {
        &self.holders
    }

    /// Records `pod`'s placement; refuses, changing nothing, if anything would be over-committed.
    pub fn apply(&mut self, pod: &str, holding: Holding) -> Result<(), LedgerError> {
        if self.holders.contains_key(pod) {
            return Err(LedgerError::AlreadyHeld {
                pod: pod.to_string(),
                node: self.name.clone(),
            });
        }
        self.check_host(&holding)?;
        let mut scratch: Vec<(u64, u32, u32)> = self
            .gpus
            .iter()
            .map(|g| (g.mem_free_mib, g.core_free, g.slots_free))
            .collect();
        for share in holding.placement.charges() {
            let gpu = self
                .gpus
                .get(share.gpu)
                .ok_or_else(|| LedgerError::UnknownGpuIndex {
                    node: self.name.clone(),
                    index: share.gpu,
                })?;
            let free = &mut scratch[share.gpu];
            let over =
                |what: &'static str, requested: u64, available: u64| LedgerError::OverCommit {
                    node: self.name.clone(),
                    gpu: gpu.ident.uuid.clone(),
                    what,
                    requested,
                    available,
                };
            free.0 = free
                .0
                .checked_sub(share.mem_mib)
                .ok_or_else(|| over("memory MiB", share.mem_mib, free.0))?;
            free.1 = free
                .1
                .checked_sub(share.core_milli)
                .ok_or_else(|| over("compute milli", share.core_milli.into(), free.1.into()))?;
            free.2 = free
                .2
                .checked_sub(share.slots)
                .ok_or_else(|| over("slots", share.slots.into(), free.2.into()))?;
        }
        for (gpu, (mem, core, slots)) in self.gpus.iter_mut().zip(scratch) {
            gpu.mem_free_mib = mem;
            gpu.core_free = core;
            gpu.slots_free = slots;
        }
        self.cpu_free_milli -= holding.cpu_milli;
        self.mem_free_mib -= holding.mem_mib;
        self.holders.insert(pod.to_string(), holding);
        self.refresh_mps_user();
        self.version = next_version();
        Ok(())
    }

    fn check_host(&self, holding: &Holding) -> Result<(), LedgerError> {
        let over =
            |what: &'static str, requested: u64, available: u64| LedgerError::HostOverCommit {
                node: self.name.clone(),
                what,
                requested,
                available,
            };
        if holding.cpu_milli > self.cpu_free_milli {
            return Err(over("cpu milli", holding.cpu_milli, self.cpu_free_milli));
        }
        if holding.mem_mib > self.mem_free_mib {
            return Err(over("memory MiB", holding.mem_mib, self.mem_free_mib));
        }
        Ok(())
    }

    /// Gives back what `pod` held; `None` if it held nothing here.
    pub fn release(&mut self, pod: &str) -> Option<Holding> {
        let holding = self.holders.remove(pod)?;
        for share in holding.placement.charges() {
            if let Some(gpu) = self.gpus.get_mut(share.gpu) {
                gpu.mem_free_mib += share.mem_mib;
                gpu.core_free += share.core_milli;
                gpu.slots_free += share.slots;
            }
        }
        self.cpu_free_milli += holding.cpu_milli;
        self.mem_free_mib += holding.mem_mib;
        self.refresh_mps_user();
        self.version = next_version();
        Some(holding)
    }

    /// Marks GPU `uuid` healthy or not; returns false if the node has no such GPU.
    pub fn set_health(&mut self, uuid: &str, healthy: bool) -> bool {
        match self.gpus.iter_mut().find(|g| g.ident.uuid == uuid) {
            Some(gpu) => {
                gpu.healthy = healthy;
                self.version = next_version();
                true
            }
            None => false,
        }
    }

    /// Free compute over healthy GPUs, thousandths.
    pub fn free_gpu_milli(&self) -> u64 {
        self.gpus
            .iter()
            .filter(|g| g.healthy)
            .map(|g| u64::from(g.core_free))
            .sum()
    }

    /// The same accounting without the change counter (for comparing rebuilt and live state).
    pub fn same_state(&self, other: &NodeLedger) -> bool {
        self.name == other.name
            && self.zone == other.zone
            && self.gpus == other.gpus
            && self.cpu_free_milli == other.cpu_free_milli
            && self.mem_free_mib == other.mem_free_mib
            && self.holders == other.holders
            && self.mps_user == other.mps_user
    }
}
