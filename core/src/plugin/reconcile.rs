//! Correcting `gpu-assignment` from what the kubelet really did.
//!
//! `Allocate` must guess the pod (the kubelet does not name it); with two pending pods of the same
//! size on one node the guess can serve pod B with pod A's assignment. The kubelet's PodResources
//! API tells afterwards which pod holds which slots. The device plugin remembers, per set of slots,
//! the shares it handed out in `Allocate`; that is what the container really runs with, so a pod
//! whose annotation says otherwise gets the served shares written back (and the extender's
//! accounting follows the annotation).
//!
//! Without a record (the plugin restarted since), the slots still name their GPUs: if they lie on
//! other GPUs than the annotation says, the annotation takes the slots' GPUs and keeps its
//! memory and compute per position.

use std::collections::BTreeMap;

use crate::annotations::{Assignment, ContainerAssignment, GpuShare};
use crate::plugin::allocate::PodView;

/// What PodResources reports for one container and our resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Container name.
    pub container: String,
    /// Device IDs (slots) the container holds.
    pub device_ids: Vec<String>,
}

/// The key under which `Allocate` records what it served for a set of slots: the IDs sorted.
pub fn record_key(device_ids: &[String]) -> String {
    let mut ids = device_ids.to_vec();
    ids.sort();
    ids.join(",")
}

/// An annotation to rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// The corrected assignment to write.
    pub assignment: Assignment,
    /// Per corrected container: `container: [old uuids] -> [new uuids]`, for the log.
    pub changes: Vec<String>,
}

/// The corrections PodResources calls for. `served` maps [`record_key`] to the shares `Allocate`
/// handed out for those slots.
pub fn corrections(
    node: &str,
    held: &[Held],
    pods: &[PodView],
    served: &BTreeMap<String, Vec<GpuShare>>,
) -> Vec<Correction> {
    let mut out: Vec<Correction> = Vec::new();
    for h in held {
        let Some(pod) = pods
            .iter()
            .find(|p| p.namespace == h.namespace && p.name == h.name)
        else {
            continue;
        };
        let annotated = pod
            .assignment
            .as_ref()
            .and_then(|a| a.containers.iter().find(|c| c.container == h.container))
            .map(|c| c.gpus.clone());
        let truth = match served.get(&record_key(&h.device_ids)) {
            Some(shares) => shares.clone(),
            // The kubelet hands an exited init container's slots on to the containers after
            // it, so in a pod with init shares a slot's GPU does not say where a container runs.
            None if has_init(pod) => continue,
            None => match &annotated {
                Some(shares) => from_slots(shares, &h.device_ids),
                None => continue,
            },
        };
        if annotated.as_ref() == Some(&truth) {
            continue;
        }
        let uuids = |s: &[GpuShare]| s.iter().map(|g| g.uuid.clone()).collect::<Vec<_>>();
        let change = format!(
            "{}: {:?} -> {:?}",
            h.container,
            annotated.as_deref().map(uuids).unwrap_or_default(),
            uuids(&truth)
        );
        let idx = out
            .iter()
            .position(|c| c.namespace == h.namespace && c.name == h.name);
        let entry = match idx {
            Some(i) => &mut out[i],
            None => {
                let assignment = pod.assignment.clone().unwrap_or_else(|| Assignment {
                    node: node.to_string(),
                    containers: Vec::new(),
                });
                out.push(Correction {
                    namespace: h.namespace.clone(),
                    name: h.name.clone(),
                    assignment,
                    changes: Vec::new(),
                });
                let last = out.len() - 1;
                &mut out[last]
            }
        };
        set_container(&mut entry.assignment, &h.container, truth);
        entry.changes.push(change);
    }
    out
}

fn has_init(pod: &PodView) -> bool {
    pod.assignment
        .as_ref()
        .is_some_and(|a| a.containers.iter().any(|c| c.init))
}

fn set_container(a: &mut Assignment, container: &str, gpus: Vec<GpuShare>) {
    match a.containers.iter_mut().find(|c| c.container == container) {
        Some(c) => c.gpus = gpus,
        None => a.containers.push(ContainerAssignment {
            container: container.to_string(),
            init: false,
            gpus,
        }),
    }
}

/// The annotated shares moved onto the GPUs the slots lie on, when those differ.
fn from_slots(shares: &[GpuShare], device_ids: &[String]) -> Vec<GpuShare> {
    let mut slot_gpus: Vec<&str> = Vec::new();
    for id in device_ids {
        if let Some((uuid, _)) = id.rsplit_once(crate::plugin::slots::SEPARATOR)
            && !slot_gpus.contains(&uuid)
        {
            slot_gpus.push(uuid);
        }
    }
    let same = slot_gpus.len() == shares.len()
        && shares.iter().all(|s| slot_gpus.contains(&s.uuid.as_str()));
    if same || slot_gpus.len() != shares.len() {
        return shares.to_vec();
    }
    shares
        .iter()
        .zip(slot_gpus)
        .map(|(s, uuid)| GpuShare {
            uuid: uuid.to_string(),
            ..s.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests;
