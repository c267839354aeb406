//! What the scheduler needs from a Node or a Pod object, extracted once per watch event so the
//! cluster state keeps small, comparable records instead of whole objects.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::annotations::{self, Assignment, CodecError};
use crate::inventory::NodeInventory;
use crate::keys;
use crate::request::{Group, RunAs, pod_group, run_as};

use super::fence::Origin;
use crate::annotations::Writer;

/// A node as the scheduler sees it: zone, GPU inventory and the device plugin's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// Node name.
    pub name: String,
    /// `topology.kubernetes.io/zone`.
    pub zone: Option<String>,
    /// Decoded `gpu-inventory` (empty when absent or invalid).
    pub inventory: NodeInventory,
    /// Why the inventory annotation could not be read, if it could not.
    pub inventory_error: Option<String>,
    /// `gpu-inventory-heartbeat` in seconds since the Unix epoch.
    pub heartbeat: Option<i64>,
}

impl NodeFacts {
    /// Facts from a node's name, labels and annotations (all a metadata watch delivers).
    pub fn from_metadata(
        name: &str,
        labels: Option<&BTreeMap<String, String>>,
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Self {
        let annotation = |k: &str| annotations.and_then(|a| a.get(k));
        let (inventory, inventory_error) = match annotation(keys::ANNOTATION_GPU_INVENTORY) {
            None => (NodeInventory::default(), None),
            Some(text) => match annotations::decode_inventory(text) {
                Ok(inventory) => (inventory, None),
                Err(e) => (NodeInventory::default(), Some(e.to_string())),
            },
        };
        NodeFacts {
            name: name.to_string(),
            zone: labels.and_then(|l| l.get(keys::LABEL_ZONE)).cloned(),
            inventory,
            inventory_error,
            heartbeat: annotation(keys::ANNOTATION_GPU_INVENTORY_HEARTBEAT)
                .and_then(|t| t.parse::<Timestamp>().ok())
                .map(|t| t.as_second()),
        }
    }

    /// True when only the heartbeat differs (the common node update: nothing to re-account).
    pub fn same_but_heartbeat(&self, other: &NodeFacts) -> bool {
        self.name == other.name
            && self.zone == other.zone
            && self.inventory == other.inventory
            && self.inventory_error == other.inventory_error
    }
}

/// A pod as the scheduler sees it: where it is bound, what it holds and its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFacts {
    /// `namespace/name`, the ledger key (as bind uses it).
    pub key: String,
    /// Pod UID (preemption names victims by it).
    pub uid: String,
    /// `spec.priority` (0 when unset).
    pub priority: i32,
    /// `spec.nodeName`, once bound.
    pub node: Option<String>,
    /// Decoded `gpu-assignment`.
    pub assignment: Option<Assignment>,
    /// Why the assignment annotation could not be read, if it could not.
    pub assignment_error: Option<String>,
    /// Anti-affinity group.
    pub group: Option<Group>,
    /// Succeeded or Failed: holds nothing any more.
    pub terminal: bool,
    /// The user its GPU containers (the ones the assignment names) run as.
    pub run_as: RunAs,
    /// Who wrote the assignment, and when.
    pub origin: Origin,
}

impl PodFacts {
    /// Facts from a pod object.
    pub fn from_pod(pod: &Pod) -> Self {
        let meta = &pod.metadata;
        let key = format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.as_deref().unwrap_or_default()
        );
        let decoded = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(keys::ANNOTATION_GPU_ASSIGNMENT))
            .map(|text| annotations::decode_assignment(text));
        let (assignment, assignment_error) = match decoded {
            None => (None, None),
            Some(Ok(a)) => (Some(a), None),
            Some(Err(e)) => (None, Some(CodecError::to_string(&e))),
        };
        let annotation = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k));
        let origin = Origin {
            writer: annotation(keys::ANNOTATION_ASSIGNED_BY).and_then(|t| Writer::decode(t).ok()),
            bind_time: annotation(keys::ANNOTATION_BIND_TIME)
                .and_then(|t| t.parse::<Timestamp>().ok())
                .map(|t| t.as_second()),
        };
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let run_as = assignment.as_ref().map_or(RunAs::Unstated, |a| {
            run_as(pod, a.containers.iter().map(|c| c.container.as_str()))
        });
        PodFacts {
            key,
            uid: meta.uid.clone().unwrap_or_default(),
            priority: pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0),
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            assignment,
            assignment_error,
            group: pod_group(pod),
            terminal: matches!(phase, Some("Succeeded" | "Failed")),
            run_as,
            origin,
        }
    }

    /// True when the pod matters to the scheduler's state: it holds (or will hold) GPU shares or
    /// belongs to a group. Others need not be kept at all.
    pub fn is_relevant(&self) -> bool {
        self.assignment.is_some() || self.assignment_error.is_some() || self.group.is_some()
    }

    /// The assignment the ledger should count: present, bound, on the node it names, not finished.
    pub fn held_assignment(&self) -> Option<&Assignment> {
        let a = self.assignment.as_ref()?;
        (!self.terminal && self.node.as_deref() == Some(a.node.as_str())).then_some(a)
    }
}
