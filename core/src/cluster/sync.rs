//! The named changes to the cluster state, one per watch event, and the resync that follows a
//! re-list (objects missing from it were deleted while the watch was down).

use std::collections::HashSet;

use crate::annotations::Assignment;
use crate::ledger::{HostCapacity, LedgerError};
use crate::request::Group;

use super::{Cluster, NodeFacts, PodFacts};

/// Something an operator should hear about; the state stays consistent either way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Notice {
    /// A node's inventory annotation could not be read; it is treated as having no GPUs.
    #[error("node {node}: ignoring its GPU inventory: {error}")]
    InvalidInventory {
        /// Node name.
        node: String,
        /// Decoding error.
        error: String,
    },
    /// A pod's assignment annotation could not be read; it is not counted.
    #[error("pod {pod}: ignoring its GPU assignment: {error}")]
    InvalidAssignment {
        /// Pod key.
        pod: String,
        /// Decoding error.
        error: String,
    },
    /// A pod's assignment names another node than the one it is bound to; it is not counted.
    #[error("pod {pod} is bound to {bound} but its GPU assignment names node {assigned}")]
    NodeMismatch {
        /// Pod key.
        pod: String,
        /// `spec.nodeName`.
        bound: String,
        /// Node in the assignment.
        assigned: String,
    },
    /// A bound pod's assignment cannot be counted now; it is retried when its node changes.
    #[error("pod {pod}: GPU assignment not counted yet: {error}")]
    Unplaced {
        /// Pod key.
        pod: String,
        /// Why.
        error: LedgerError,
    },
}

impl Cluster {
    /// A node was added or changed.
    pub fn apply_node(&mut self, facts: NodeFacts) -> Vec<Notice> {
        let mut notices = Vec::new();
        if let Some(old) = self.nodes.get_mut(&facts.name)
            && old.same_but_heartbeat(&facts)
        {
            old.heartbeat = facts.heartbeat;
            return notices;
        }
        if let Some(error) = &facts.inventory_error {
            notices.push(Notice::InvalidInventory {
                node: facts.name.clone(),
                error: error.clone(),
            });
        }
        let name = facts.name.clone();
        let old_zone = self.nodes.get(&name).map(|f| f.zone.clone());
        if let Some(old_zone) = &old_zone {
            self.count_zone(old_zone.as_deref(), -1);
        }
        self.count_zone(facts.zone.as_deref(), 1);
        self.uncount_members_on(&name);
        let dropped = self.ledger.upsert_node(
            &name,
            facts.zone.clone(),
            &facts.inventory,
            HostCapacity::untracked(),
        );
        self.nodes.insert(name.clone(), facts);
        for pod in dropped {
            self.reservations.confirm(&pod);
            self.unplaced.entry(name.clone()).or_default().insert(pod);
        }
        self.count_members_on(&name);
        self.place_unplaced(&name, &mut notices);
        notices
    }

    /// A node was deleted: its pods stop counting until it comes back.
    pub fn remove_node(&mut self, name: &str) {
        let Some(facts) = self.nodes.remove(name) else {
            return;
        };
        self.count_zone(facts.zone.as_deref(), -1);
        self.uncount_members_on(name);
        for pod in self.ledger.remove_node(name) {
            if self.pods.contains_key(&pod) {
                self.unplaced
                    .entry(name.to_string())
                    .or_default()
                    .insert(pod);
            } else {
                // A reservation whose pod was never seen: its node is gone, so is the share.
                self.reservations.confirm(&pod);
            }
        }
    }

    /// A pod was added or changed.
    pub fn apply_pod(&mut self, facts: PodFacts) -> Vec<Notice> {
        let mut notices = Vec::new();
        if facts.terminal {
            self.remove_pod(&facts.key);
            return notices;
        }
        if !facts.is_relevant() {
            // No assignment yet, but a bind may be in flight: an event written before its
            // annotation patch (kube-scheduler's status update of an earlier attempt) arrives
            // late. Releasing the reservation then would hand the same GPU to another bind.
            if !self.reservations.is_pending(&facts.key) {
                self.remove_pod(&facts.key);
            }
            return notices;
        }
        if self.pods.get(&facts.key) == Some(&facts) {
            return notices;
        }
        if let Some(error) = &facts.assignment_error {
            notices.push(Notice::InvalidAssignment {
                pod: facts.key.clone(),
                error: error.clone(),
            });
        }
        if let (Some(a), Some(bound)) = (&facts.assignment, &facts.node)
            && a.node != *bound
        {
            notices.push(Notice::NodeMismatch {
                pod: facts.key.clone(),
                bound: bound.clone(),
                assigned: a.node.clone(),
            });
        }
        let key = facts.key.clone();
        let was_bound = self.pods.get(&key).is_some_and(|f| f.node.is_some());
        let unbound = facts.node.is_none();
        let held = facts.held_assignment().cloned();
        let member = match (&facts.group, &facts.node) {
            (Some(g), Some(n)) => Some((g.clone(), n.clone())),
            _ => None,
        };
        self.pods.insert(key.clone(), facts);
        match held {
            Some(assignment) => self.hold(&key, &assignment, &mut notices),
            // Not (or no longer) holding: release, unless a bind is still in flight for it.
            None if !self.reservations.is_pending(&key) => self.release(&key, &mut notices),
            None => {}
        }
        match member {
            Some((group, node)) => self.record_member(&key, group, &node),
            // Not bound yet: a bind in flight may already count it (see `record_member`).
            None if unbound && !was_bound => {}
            None => self.forget_member(&key),
        }
        notices
    }

    /// A pod was deleted: whatever it held or reserved is free.
    pub fn remove_pod(&mut self, key: &str) {
        self.pods.remove(key);
        self.forget_member(key);
        self.reservations.confirm(key);
        self.release(key, &mut Vec::new());
    }

    /// After a re-list of nodes: everything not in `all` was deleted meanwhile.
    pub fn resync_nodes(&mut self, all: Vec<NodeFacts>) -> Vec<Notice> {
        let seen: HashSet<&str> = all.iter().map(|n| n.name.as_str()).collect();
        let gone: Vec<String> = self
            .nodes
            .keys()
            .filter(|n| !seen.contains(n.as_str()))
            .cloned()
            .collect();
        for name in gone {
            self.remove_node(&name);
        }
        all.into_iter().flat_map(|n| self.apply_node(n)).collect()
    }

    /// After a re-list of pods: everything not in `all` was deleted meanwhile.
    pub fn resync_pods(&mut self, all: Vec<PodFacts>) -> Vec<Notice> {
        let seen: HashSet<&str> = all.iter().map(|p| p.key.as_str()).collect();
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|p| !seen.contains(p.as_str()))
            .cloned()
            .collect();
        for key in gone {
            self.remove_pod(&key);
        }
        all.into_iter().flat_map(|p| self.apply_pod(p)).collect()
    }

    /// The state built from scratch from every node and pod: what a restarted extender holds.
    pub fn rebuild(
        slots_per_gpu: u32,
        nodes: Vec<NodeFacts>,
        pods: Vec<PodFacts>,
    ) -> (Cluster, Vec<Notice>) {
        let mut cluster = Cluster::new(slots_per_gpu);
        let mut notices = cluster.resync_nodes(nodes);
        notices.extend(cluster.resync_pods(pods));
        cluster.refresh_mix();
        cluster.refresh_frag();
        (cluster, notices)
    }

    /// A bound group member counts for spreading (bind calls this before the watch catches up;
    /// calling it again for the same pod and node changes nothing).
    pub fn record_member(&mut self, pod: &str, group: Group, node: &str) {
        if let Some((g, n)) = self.members.get(pod)
            && *g == group
            && n == node
        {
            return;
        }
        self.forget_member(pod);
        if let Some(ledger) = self.ledger.node(node) {
            self.spread.add(&group, ledger);
        }
        self.members
            .insert(pod.to_string(), (group, node.to_string()));
    }

    /// Stops counting `pod` as a group member (a bind that recorded it failed).
    pub fn forget_member(&mut self, pod: &str) {
        if let Some((group, node)) = self.members.remove(pod)
            && let Some(ledger) = self.ledger.node(&node)
        {
            self.spread.remove(&group, ledger);
        }
    }

    fn uncount_members_on(&mut self, node: &str) {
        let Some(ledger) = self.ledger.node(node) else {
            return;
        };
        for (group, n) in self.members.values() {
            if n == node {
                self.spread.remove(group, ledger);
            }
        }
    }

    fn count_members_on(&mut self, node: &str) {
        let Some(ledger) = self.ledger.node(node) else {
            return;
        };
        for (group, n) in self.members.values() {
            if n == node {
                self.spread.add(group, ledger);
            }
        }
    }

    fn count_zone(&mut self, zone: Option<&str>, delta: i32) {
        let Some(zone) = zone else { return };
        let before = self.zones.len();
        let count = self.zones.entry(zone.to_string()).or_default();
        *count = count.saturating_add_signed(delta);
        if *count == 0 {
            self.zones.remove(zone);
        }
        if self.zones.len() != before {
            self.spread.set_zones(self.zones.keys().map(String::as_str));
        }
    }

    /// Counts `assignment` for `pod`, replacing what it held if that differs.
    fn hold(&mut self, pod: &str, assignment: &Assignment, notices: &mut Vec<Notice>) {
        // The watch saw the pod bound: a reservation made at bind is now a fact.
        self.reservations.confirm(pod);
        if let Some(node) = self.ledger.node_of(pod)
            && node.name == assignment.node
            && node
                .holders()
                .get(pod)
                .is_some_and(|h| node.to_assignment(&h.placement) == *assignment)
        {
            return;
        }
        self.release(pod, notices);
        self.remove_unplaced(pod);
        let run_as = self.pods.get(pod).map(|f| f.run_as).unwrap_or_default();
        if let Err(error) = self.ledger.apply_assignment(pod, assignment, run_as) {
            self.unplaced
                .entry(assignment.node.clone())
                .or_default()
                .insert(pod.to_string());
            if self.ledger.node(&assignment.node).is_some() {
                self.place_unplaced(&assignment.node, notices);
            } else {
                notices.push(Notice::Unplaced {
                    pod: pod.to_string(),
                    error,
                });
            }
        }
    }

    /// Stops counting `pod`; others waiting on its node may fit now.
    fn release(&mut self, pod: &str, notices: &mut Vec<Notice>) {
        self.remove_unplaced(pod);
        let node = self.ledger.node_of(pod).map(|n| n.name.clone());
        if self.ledger.release(pod).is_some()
            && let Some(node) = node
        {
            self.place_unplaced(&node, notices);
        }
    }

    fn remove_unplaced(&mut self, pod: &str) {
        self.unplaced.retain(|_, pods| {
            pods.remove(pod);
            !pods.is_empty()
        });
    }

    /// Counts the pods waiting on `node` that fit now. The apiserver can hold assignments that
    /// over-commit a GPU together (a race, a bug elsewhere); which of them count is then settled
    /// by pod name, holders included, so the outcome depends only on which pods exist, never on
    /// the order their events came in: a restarted extender ends up counting the same pods.
    fn place_unplaced(&mut self, node: &str, notices: &mut Vec<Notice>) {
        let Some(mut pods) = self.unplaced.remove(node) else {
            return;
        };
        // A bind in flight is not an assignment the apiserver holds yet: it keeps its share.
        if let Some(held) = self.ledger.node(node) {
            let settled = held.holders().keys().filter(|p| {
                !self.reservations.is_pending(p)
                    && self
                        .pods
                        .get(*p)
                        .and_then(|f| f.held_assignment())
                        .is_some_and(|a| a.node == node)
            });
            pods.extend(settled.cloned());
        }
        for pod in &pods {
            self.ledger.release(pod);
        }
        let mut still = std::collections::BTreeSet::new();
        for pod in pods {
            let Some(facts) = self.pods.get(&pod) else {
                continue;
            };
            let Some(assignment) = facts.held_assignment() else {
                continue;
            };
            if let Err(error) = self.ledger.apply_assignment(&pod, assignment, facts.run_as) {
                notices.push(Notice::Unplaced {
                    pod: pod.clone(),
                    error,
                });
                still.insert(pod);
            }
        }
        if !still.is_empty() {
            self.unplaced.insert(node.to_string(), still);
        }
    }
}
