//! What the controller saw of one ensemble.

use std::collections::{BTreeMap, BTreeSet};

/// One member's pod.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodState {
    /// Ready: serving and in sync with the ensemble (the profile's readiness says so).
    pub ready: bool,
    /// Being deleted (its stop waits on the controller).
    pub terminating: bool,
    /// Runs the StatefulSet's current template (not waiting for a rolling update).
    pub updated: bool,
    /// Stopping, and its stop already released as not a scale-in.
    pub released: bool,
}

/// The membership the product itself reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    /// Members that vote.
    pub voters: BTreeSet<u32>,
    /// Members the product lists without a vote.
    pub learners: BTreeSet<u32>,
    /// The member that leads, when one answered so.
    pub leader: Option<u32>,
}

/// One ensemble as observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// The StatefulSet's replicas.
    pub target: u32,
    /// Pods by ordinal (missing ordinals have no pod).
    pub pods: BTreeMap<u32, PodState>,
    /// The live membership; `None` when no member answered.
    pub live: Option<Live>,
    /// The StatefulSet replaces pods only when they are deleted (`OnDelete`): rolling updates
    /// are then the controller's to order.
    pub on_delete: bool,
}

impl Observation {
    /// A member that is up: its pod is ready and, if stopping, still held by its hook (a
    /// member's stop waits until it is out of the voters or released).
    pub fn alive(&self, ordinal: u32) -> bool {
        self.pods
            .get(&ordinal)
            .is_some_and(|p| p.ready && !p.released)
    }

    /// True when `voters` has a majority of members alive.
    pub fn majority_alive(&self, voters: &BTreeSet<u32>) -> bool {
        let alive = voters.iter().filter(|v| self.alive(**v)).count();
        alive > voters.len() / 2
    }
}
