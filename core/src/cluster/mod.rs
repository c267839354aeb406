//! The scheduler's picture of the cluster as plain data: the GPU ledger built from node
//! inventories and pod assignments, group membership for spreading, reservations made at bind,
//! the typical request mix and the inventory heartbeats.
//!
//! Changed only through the named methods in `sync` (`apply_node`, `remove_node`, `apply_pod`,
//! `remove_pod`, `resync_*`, `record_bind`): the extender's watchers call them in production,
//! tests call them directly, and `Cluster::rebuild` is the same calls on a fresh state, so a
//! restart rebuilds exactly what the live state holds (STYLE.md, principle 2).

mod facts;
mod fence;
mod mix;
mod sync;
#[cfg(test)]
mod tests;
mod usage;

use std::collections::BTreeSet;

pub use facts::{NodeFacts, PodFacts};
pub use fence::{Judge, Origin};
pub use mix::mix_of;
pub use sync::Notice;
pub use usage::{IsolationCounts, ModelUsage};

use crate::affinity::Spread;
use crate::decide::View;
use crate::frag::{FragCache, TypicalPods};
use crate::hash::FnvMap;
use crate::ledger::{ClusterLedger, Reservations};
use crate::request::Group;
use crate::score::{Policy, ScoreContext};

/// Share of pods the typical mix covers (the FGD paper's 95%).
pub const MIX_COVERAGE: f64 = 0.95;

/// Everything a scheduling decision reads, and what it was built from.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    /// GPU accounting.
    pub ledger: ClusterLedger,
    /// Where group members are.
    pub spread: Spread,
    /// Typical request mix for the fragmentation policies.
    pub mix: TypicalPods,
    /// Shares handed out at bind and not yet seen bound by the pod watch.
    pub reservations: Reservations,
    frag: FragCache,
    nodes: FnvMap<String, NodeFacts>,
    pods: FnvMap<String, PodFacts>,
    /// Pods whose assignment could not be counted yet, by node (unknown node or GPU, or a
    /// transient over-commit while annotations are being corrected); retried on node changes.
    unplaced: FnvMap<String, BTreeSet<String>>,
    /// Counted group members: pod → (group, node).
    members: FnvMap<String, (Group, String)>,
    zones: FnvMap<String, u32>,
}

/// Why a node's GPUs may not be offered: the device plugin has not reported recently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    /// No heartbeat annotation at all.
    #[error("node {node} has no GPU inventory heartbeat (is the device plugin running?)")]
    Missing {
        /// Node name.
        node: String,
    },
    /// The last heartbeat is too old.
    #[error("GPU inventory heartbeat of node {node} is {age_secs}s old (limit {max_age_secs}s)")]
    Old {
        /// Node name.
        node: String,
        /// Age of the last heartbeat.
        age_secs: i64,
        /// Allowed age.
        max_age_secs: i64,
    },
}

impl Cluster {
    /// An empty cluster whose GPUs get `slots_per_gpu` device-plugin slots each.
    pub fn new(slots_per_gpu: u32) -> Self {
        Cluster {
            ledger: ClusterLedger::new(slots_per_gpu),
            ..Default::default()
        }
    }

    /// The same cluster placing fractional shares by `policy` (set before nodes are added).
    pub fn with_sharing(mut self, policy: crate::ledger::SharingPolicy) -> Self {
        self.ledger = std::mem::take(&mut self.ledger).with_policy(policy);
        self
    }

    /// The decision view under `policy` (uses the fragmentation cache as last refreshed).
    pub fn view(&self, policy: Policy) -> View<'_> {
        View {
            ledger: &self.ledger,
            spread: &self.spread,
            policy,
            ctx: ScoreContext {
                mix: &self.mix,
                frag: Some(&self.frag),
            },
        }
    }

    /// Brings the fragmentation cache up to date after changes.
    pub fn refresh_frag(&mut self) {
        let Cluster {
            ledger, mix, frag, ..
        } = self;
        frag.refresh_touched(ledger, mix);
    }

    /// Whether node `name`'s GPUs may be offered at `now_secs` (Unix seconds): its inventory
    /// heartbeat must be at most `max_age_secs` old. Nodes the watch never reported (tests,
    /// simulations) and nodes without GPUs are not checked.
    pub fn check_heartbeat(
        &self,
        name: &str,
        now_secs: i64,
        max_age_secs: i64,
    ) -> Result<(), Stale> {
        let Some(facts) = self.nodes.get(name) else {
            return Ok(());
        };
        if facts.inventory.gpus.is_empty() {
            return Ok(());
        }
        let Some(beat) = facts.heartbeat else {
            return Err(Stale::Missing {
                node: name.to_string(),
            });
        };
        let age_secs = now_secs.saturating_sub(beat);
        if age_secs > max_age_secs {
            return Err(Stale::Old {
                node: name.to_string(),
                age_secs,
                max_age_secs,
            });
        }
        Ok(())
    }

    /// Pods the state tracks (holding shares or members of a group).
    pub fn tracked_pods(&self) -> usize {
        self.pods.len()
    }

    /// Every pod the state tracks.
    pub fn pods(&self) -> impl Iterator<Item = &PodFacts> {
        self.pods.values()
    }

    /// What the watch last reported about pod `key`.
    pub fn pod(&self, key: &str) -> Option<&PodFacts> {
        self.pods.get(key)
    }

    /// Nodes the watch reported.
    pub fn tracked_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Pods whose assignment is known but not counted (see `unplaced`), sorted.
    pub fn unplaced_pods(&self) -> Vec<String> {
        let mut all: Vec<String> = self.unplaced.values().flatten().cloned().collect();
        all.sort();
        all
    }

    /// True when both hold the same accounting, membership and mix (ignoring caches, change
    /// counters and order): what a restart must reproduce.
    pub fn same_state(&self, other: &Cluster) -> bool {
        self.ledger.same_state(&other.ledger)
            && self.spread == other.spread
            && self.mix == other.mix
            && self.nodes == other.nodes
            && self.pods == other.pods
            && self.members == other.members
            && self.unplaced == other.unplaced
    }
}
