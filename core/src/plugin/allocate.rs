//! Which pod an `Allocate` (or `GetPreferredAllocation`) serves.
//!
//! The kubelet's request names only device IDs, never the pod. The contract (DESIGN.md) is: the
//! pod on this node in `bind-phase: allocating` whose container request matches, oldest
//! `bind-time` first. Here "matches" means the container's assignment has as many GPUs as slots
//! were requested, and a container whose assigned GPUs are exactly the GPUs the slots lie on is
//! preferred (that is what `GetPreferredAllocation` steered the kubelet to). When nothing matches
//! the answer is an error naming node, request and candidates, never a guess at a GPU.

use thiserror::Error;

use crate::annotations::{Assignment, GpuShare};

/// The `bind-phase` of a pod, as the device plugin needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindPhase {
    /// Bound by the extender, not yet served by `Allocate`.
    Allocating,
    /// Served.
    Allocated,
    /// No or another phase (not a Tessera pod, or not yet bound).
    Other,
}

impl BindPhase {
    /// Reads the annotation value.
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some(crate::keys::BIND_PHASE_ALLOCATING) => Self::Allocating,
            Some(crate::keys::BIND_PHASE_ALLOCATED) => Self::Allocated,
            _ => Self::Other,
        }
    }
}

/// What the device plugin knows of one pod on its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID: what "already served" is keyed by, so a pod re-created under the same name (a
    /// StatefulSet member) is a new pod. Empty when unknown; the name is used then.
    pub uid: String,
    /// `tessera.dev/bind-phase`.
    pub phase: BindPhase,
    /// `tessera.dev/bind-time` in milliseconds since the Unix epoch; `None` sorts last.
    pub bind_time_ms: Option<i64>,
    /// `tessera.dev/gpu-assignment`, when present and readable.
    pub assignment: Option<Assignment>,
}

impl PodView {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The identity `served` lists use: the UID, or `namespace/name` without one.
    pub fn identity(&self) -> String {
        if self.uid.is_empty() {
            self.key()
        } else {
            self.uid.clone()
        }
    }
}

/// The container an allocation serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// The pod's [`PodView::identity`].
    pub identity: String,
    /// Container name.
    pub container: String,
    /// The GPUs and shares the extender assigned to it.
    pub shares: Vec<GpuShare>,
}

/// No pod matched a request.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "no pod in bind-phase allocating on node {node} has a container assigned {requested} GPU(s) \
     (request {device_ids:?}); candidates: {}",
    if candidates.is_empty() { "none".to_string() } else { candidates.join(", ") }
)]
pub struct NoMatch {
    /// This node.
    pub node: String,
    /// Number of slots requested (= distinct GPUs wanted).
    pub requested: usize,
    /// The device IDs of the request.
    pub device_ids: Vec<String>,
    /// Each allocating pod with its unserved containers' GPU counts, e.g. `ns/a[main=2]`.
    pub candidates: Vec<String>,
}

/// Finds the container a request for `requested` GPUs serves; `device_ids` are the slots the
/// kubelet chose (Allocate) or must include (GetPreferredAllocation), lying on `slot_gpus`.
///
/// `served` lists `(pod identity, container)` already served, so a pod with several GPU
/// containers is matched container by container.
pub fn match_request(
    node: &str,
    pods: &[PodView],
    requested: usize,
    device_ids: &[String],
    slot_gpus: &[String],
    served: &[(String, String)],
) -> Result<Matched, NoMatch> {
    let mut best: Option<((bool, bool, i64, String), Matched)> = None;
    for pod in pods.iter().filter(|p| p.phase == BindPhase::Allocating) {
        let Some(assignment) = pod.assignment.as_ref().filter(|a| a.node == node) else {
            continue;
        };
        let key = pod.key();
        let identity = pod.identity();
        // The kubelet allocates a pod's containers one after another, init containers first,
        // and hands an ordinary init container's slots on to the containers after it: once one
        // of a pod's init containers is served, the next requests are that pod's, on slots
        // that need not lie on the GPUs assigned to them.
        let continuing = assignment
            .containers
            .iter()
            .any(|c| c.init && is_served(served, &identity, &c.container));
        for c in &assignment.containers {
            if c.gpus.len() != requested
                || served
                    .iter()
                    .any(|(p, n)| *p == identity && *n == c.container)
            {
                continue;
            }
            // Rank: a pod part-way through its init containers, then exact GPUs, then oldest
            // bind time, then name for a stable answer.
            let exact = same_gpus(&c.gpus, slot_gpus);
            let rank = (
                !continuing,
                !exact,
                pod.bind_time_ms.unwrap_or(i64::MAX),
                key.clone(),
            );
            if best.as_ref().is_none_or(|(r, _)| rank < *r) {
                let matched = Matched {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    identity: identity.clone(),
                    container: c.container.clone(),
                    shares: c.gpus.clone(),
                };
                best = Some((rank, matched));
            }
        }
    }
    best.map(|(_, m)| m)
        .ok_or_else(|| no_match(node, pods, requested, device_ids, served))
}

fn is_served(served: &[(String, String)], identity: &str, container: &str) -> bool {
    served.iter().any(|(p, n)| p == identity && n == container)
}

fn same_gpus(shares: &[GpuShare], uuids: &[String]) -> bool {
    shares.len() == uuids.len() && shares.iter().all(|s| uuids.contains(&s.uuid))
}

fn no_match(
    node: &str,
    pods: &[PodView],
    requested: usize,
    device_ids: &[String],
    served: &[(String, String)],
) -> NoMatch {
    let candidates = pods
        .iter()
        .filter(|p| p.phase == BindPhase::Allocating)
        .map(|p| {
            let key = p.key();
            let identity = p.identity();
            let containers = match &p.assignment {
                Some(a) if a.node != node => format!("assigned to node {}", a.node),
                Some(a) => a
                    .containers
                    .iter()
                    .filter(|c| {
                        !served
                            .iter()
                            .any(|(k, n)| *k == identity && *n == c.container)
                    })
                    .map(|c| format!("{}={}", c.container, c.gpus.len()))
                    .collect::<Vec<_>>()
                    .join(","),
                None => "no gpu-assignment".to_string(),
            };
            format!("{key}[{containers}]")
        })
        .collect();
    NoMatch {
        node: node.to_string(),
        requested,
        device_ids: device_ids.to_vec(),
        candidates,
    }
}

/// Whether every GPU container of the pod's assignment has been served, so its `bind-phase`
/// becomes `allocated`.
pub fn fully_served(assignment: &Assignment, identity: &str, served: &[(String, String)]) -> bool {
    assignment
        .containers
        .iter()
        .filter(|c| !c.gpus.is_empty())
        .all(|c| {
            served
                .iter()
                .any(|(k, n)| k == identity && *n == c.container)
        })
}

/// The slots `GetPreferredAllocation` proposes: the ones in `must_include`, then one available
/// slot on each GPU the matched container was assigned, then (only if the kubelet asks for more
/// than that) any other available slot. Without a matched container it keeps the kubelet's
/// order; `Allocate` then reports the missing pod.
pub fn preferred_slots(
    matched: Option<&Matched>,
    available: &[String],
    must_include: &[String],
    size: usize,
) -> Vec<String> {
    let mut out: Vec<String> = must_include.iter().take(size).cloned().collect();
    let on_gpu = |id: &str, uuid: &str| {
        id.rsplit_once(crate::plugin::slots::SEPARATOR)
            .is_some_and(|(u, _)| u == uuid)
    };
    if let Some(m) = matched {
        for share in &m.shares {
            if out.len() >= size || out.iter().any(|id| on_gpu(id, &share.uuid)) {
                continue;
            }
            if let Some(id) = available.iter().find(|id| on_gpu(id, &share.uuid)) {
                out.push(id.clone());
            }
        }
    }
    for id in available {
        if out.len() >= size {
            break;
        }
        if !out.contains(id) {
            out.push(id.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests;
