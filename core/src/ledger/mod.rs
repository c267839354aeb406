//! The GPU ledger: what every GPU of every node has free, and which pod holds which share.
//!
//! Plain data changed by named methods (`upsert_node`, `apply`, `release`). The extender's watchers
//! call them in production, the simulator and tests call them directly, and `rebuild` derives the
//! whole ledger from node inventories and pod assignments as a pure function, so a restart can
//! never double-allocate (STYLE.md, principle 2).

mod assignment;
mod charge;
mod node;
mod reservations;
mod sharing;
#[cfg(test)]
mod tests;

pub use charge::{Charge, InitPlacement};
pub use node::{GpuIdentity, GpuState, Holding, HostCapacity, NodeLedger, next_version};
pub use reservations::Reservations;
pub use sharing::{Sharing, SharingPolicy};

use crate::hash::FnvMap;

use thiserror::Error;

use crate::annotations::Assignment;
use crate::inventory::NodeInventory;
use crate::request::RunAs;

/// A share on one GPU, by index on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// GPU index on the node.
    pub gpu: usize,
    /// MiB of memory.
    pub mem_mib: u64,
    /// Thousandths of compute.
    pub core_milli: u32,
}

/// The GPUs chosen for one container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerPlacement {
    /// Container name.
    pub container: String,
    /// One share per distinct GPU.
    pub shares: Vec<Share>,
}

/// The GPUs chosen for a whole pod on one node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    /// Per container that asked for GPUs and holds them for the pod's life: native sidecars
    /// first, then app containers (as in [`crate::request::PodRequest::containers`]).
    pub containers: Vec<ContainerPlacement>,
    /// Per ordinary init container that asked for GPUs, in spec order.
    pub init: Vec<InitPlacement>,
}

impl Placement {
    /// Every share of every container, init containers included (who is on which GPU). The
    /// ledger charges [`Placement::charges`], which is less when init containers hold shares.
    pub fn shares(&self) -> impl Iterator<Item = &Share> {
        self.containers
            .iter()
            .chain(self.init.iter().map(|i| &i.placement))
            .flat_map(|c| c.shares.iter())
    }
}

/// Why the ledger refused a change.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LedgerError {
    /// The node is not in the ledger.
    #[error("node {node:?} is not known to the ledger")]
    UnknownNode {
        /// Node name.
        node: String,
    },
    /// An assignment names a GPU the node does not have.
    #[error("node {node:?} has no GPU {uuid:?}")]
    UnknownGpu {
        /// Node name.
        node: String,
        /// GPU UUID.
        uuid: String,
    },
    /// A placement names a GPU index past the node's GPUs.
    #[error("node {node:?} has no GPU index {index}")]
    UnknownGpuIndex {
        /// Node name.
        node: String,
        /// GPU index.
        index: usize,
    },
    /// Placing the share would over-commit a GPU.
    #[error("node {node:?} GPU {gpu}: {what} requested {requested}, only {available} free")]
    OverCommit {
        /// Node name.
        node: String,
        /// GPU UUID.
        gpu: String,
        /// Which resource.
        what: &'static str,
        /// Amount requested.
        requested: u64,
        /// Amount free.
        available: u64,
    },
    /// Placing the pod would over-commit host CPU or memory.
    #[error("node {node:?}: host {what} requested {requested}, only {available} free")]
    HostOverCommit {
        /// Node name.
        node: String,
        /// Which resource.
        what: &'static str,
        /// Amount requested.
        requested: u64,
        /// Amount free.
        available: u64,
    },
    /// The pod already holds shares.
    #[error("pod {pod:?} already holds shares on node {node:?}")]
    AlreadyHeld {
        /// Pod key.
        pod: String,
        /// Node name.
        node: String,
    },
}

/// Every node's accounting, and where each pod is.
#[derive(Debug, Clone, Default)]
pub struct ClusterLedger {
    nodes: Vec<NodeLedger>,
    by_name: FnvMap<String, usize>,
    pods: FnvMap<String, usize>,
    slots_per_gpu: u32,
    policy: SharingPolicy,
    layout: u64,
    /// Nodes changed since the last [`ClusterLedger::take_touched`], each once.
    touched: Vec<usize>,
    is_touched: Vec<bool>,
}

impl ClusterLedger {
    /// An empty ledger; each GPU gets `slots_per_gpu` slots, and fractional shares go only to
    /// GPUs with live isolation.
    pub fn new(slots_per_gpu: u32) -> Self {
        ClusterLedger {
            slots_per_gpu,
            ..Default::default()
        }
    }

    /// The same ledger placing fractional shares by `policy` (set before nodes are added).
    pub fn with_policy(mut self, policy: SharingPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Nodes in insertion order.
    pub fn nodes(&self) -> &[NodeLedger] {
        &self.nodes
    }

    /// Index of node `name`.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Node `name`.
    pub fn node(&self, name: &str) -> Option<&NodeLedger> {
        self.node_index(name).map(|i| &self.nodes[i])
    }

    /// Node holding `pod`, if any.
    pub fn node_of(&self, pod: &str) -> Option<&NodeLedger> {
        self.pods.get(pod).map(|i| &self.nodes[*i])
    }

    /// Changes whenever a node is added or removed (node indices may then move), so that
    /// caches keyed by node index know to start over.
    pub fn layout(&self) -> u64 {
        self.layout
    }

    /// The indices of the nodes changed (or handed out mutably) since the last call, each once,
    /// so that per-node caches refresh only those. After a layout change the list is empty:
    /// indices moved, and caches must start over anyway.
    pub fn take_touched(&mut self) -> Vec<usize> {
        for &i in &self.touched {
            if let Some(flag) = self.is_touched.get_mut(i) {
                *flag = false;
            }
        }
        std::mem::take(&mut self.touched)
    }

    fn touch(&mut self, i: usize) {
        if self.is_touched.len() < self.nodes.len() {
            self.is_touched.resize(self.nodes.len(), false);
        }
        if !self.is_touched[i] {
            self.is_touched[i] = true;
            self.touched.push(i);
        }
    }

    fn layout_changed(&mut self) {
        // Unique across ledgers, so a cache handed a different ledger never takes it for the
        // one it last saw.
        static NEXT_LAYOUT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        self.layout = NEXT_LAYOUT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.touched.clear();
        self.is_touched.clear();
        self.is_touched.resize(self.nodes.len(), false);
    }

    /// Number of pods holding shares.
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// Adds a node, or replaces its inventory keeping the holdings that still apply.
    /// Returns the pods whose holdings no longer fit (their GPU vanished); they are released.
    pub fn upsert_node(
        &mut self,
        name: &str,
        zone: Option<String>,
        inventory: &NodeInventory,
        host: HostCapacity,
    ) -> Vec<String> {
        let mut fresh =
            NodeLedger::new(name, zone, inventory, host, self.slots_per_gpu, self.policy);
        let Some(&i) = self.by_name.get(name) else {
            self.by_name.insert(name.to_string(), self.nodes.len());
            fresh.slot = self.nodes.len();
            self.nodes.push(fresh);
            self.layout_changed();
            return Vec::new();
        };
        let old = std::mem::replace(
            &mut self.nodes[i],
            NodeLedger::new(name, None, &NodeInventory::default(), host, 0, self.policy),
        );
        let mut dropped = Vec::new();
        for (pod, holding) in old.holders() {
            let assignment = old.to_assignment(&holding.placement);
            let reapplied = fresh.placement_of(&assignment).and_then(|placement| {
                fresh.apply(
                    pod,
                    Holding {
                        placement,
                        ..holding.clone()
                    },
                )
            });
            if reapplied.is_err() {
                dropped.push(pod.clone());
            }
        }
        fresh.version = next_version();
        fresh.slot = i;
        self.nodes[i] = fresh;
        self.touch(i);
        for pod in &dropped {
            self.pods.remove(pod);
        }
        dropped
    }

    /// Removes a node and forgets every pod on it; returns those pods.
    pub fn remove_node(&mut self, name: &str) -> Vec<String> {
        let Some(i) = self.by_name.remove(name) else {
            return Vec::new();
        };
        let removed = self.nodes.swap_remove(i);
        self.layout_changed();
        if i < self.nodes.len() {
            self.nodes[i].slot = i;
            let moved = self.nodes[i].name.clone();
            self.by_name.insert(moved, i);
            for pod in self.nodes[i].holders().keys() {
                self.pods.insert(pod.clone(), i);
            }
        }
        let pods: Vec<String> = removed.holders().keys().cloned().collect();
        for pod in &pods {
            self.pods.remove(pod);
        }
        pods
    }

    /// Records `pod` on node `node` (by index).
    pub fn apply_at(
        &mut self,
        node: usize,
        pod: &str,
        holding: Holding,
    ) -> Result<(), LedgerError> {
        if let Some(&held) = self.pods.get(pod) {
            return Err(LedgerError::AlreadyHeld {
                pod: pod.to_string(),
                node: self.nodes[held].name.clone(),
            });
        }
        let ledger = self
            .nodes
            .get_mut(node)
            .ok_or_else(|| LedgerError::UnknownNode {
                node: format!("#{node}"),
            })?;
        ledger.apply(pod, holding)?;
        self.pods.insert(pod.to_string(), node);
        self.touch(node);
        Ok(())
    }

    /// Records an annotation-form assignment for `pod` (host resources not tracked).
    pub fn apply_assignment(
        &mut self,
        pod: &str,
        assignment: &Assignment,
        run_as: RunAs,
    ) -> Result<(), LedgerError> {
        let i = self
            .node_index(&assignment.node)
            .ok_or_else(|| LedgerError::UnknownNode {
                node: assignment.node.clone(),
            })?;
        let placement = self.nodes[i].placement_of(assignment)?;
        self.apply_at(
            i,
            pod,
            Holding {
                placement,
                cpu_milli: 0,
                mem_mib: 0,
                run_as,
            },
        )
    }

    /// Releases whatever `pod` holds.
    pub fn release(&mut self, pod: &str) -> Option<Holding> {
        let i = self.pods.remove(pod)?;
        self.touch(i);
        self.nodes[i].release(pod)
    }

    /// Mutable access to one node, for health changes (counted as a change).
    pub fn node_mut(&mut self, name: &str) -> Option<&mut NodeLedger> {
        let i = self.node_index(name)?;
        self.touch(i);
        Some(&mut self.nodes[i])
    }

    /// True when both ledgers hold the same accounting (ignoring change counters and order).
    pub fn same_state(&self, other: &ClusterLedger) -> bool {
        self.nodes.len() == other.nodes.len()
            && self.pods.len() == other.pods.len()
            && self
                .nodes
                .iter()
                .all(|n| other.node(&n.name).is_some_and(|o| n.same_state(o)))
    }
}

/// A node as the watcher sees it.
#[derive(Debug, Clone)]
pub struct NodeSource {
    /// Node name.
    pub name: String,
    /// Zone label.
    pub zone: Option<String>,
    /// Decoded `gpu-inventory`.
    pub inventory: NodeInventory,
}

/// Builds the ledger from scratch. Pods whose assignment cannot be applied (unknown node or GPU,
/// or a share that would over-commit) are returned with the reason instead of being counted.
pub fn rebuild<'a>(
    slots_per_gpu: u32,
    nodes: impl IntoIterator<Item = &'a NodeSource>,
    pods: impl IntoIterator<Item = (&'a str, &'a Assignment, RunAs)>,
) -> (ClusterLedger, Vec<(String, LedgerError)>) {
    let mut ledger = ClusterLedger::new(slots_per_gpu);
    for n in nodes {
        ledger.upsert_node(
            &n.name,
            n.zone.clone(),
            &n.inventory,
            HostCapacity::untracked(),
        );
    }
    let mut rejected = Vec::new();
    for (pod, assignment, run_as) in pods {
        if let Err(e) = ledger.apply_assignment(pod, assignment, run_as) {
            rejected.push((pod.to_string(), e));
        }
    }
    (ledger, rejected)
}
