//! What the apiserver says was handed out: every GPU's memory and compute summed over the
//! `gpu-assignment` annotations of bound pods, against the GPU's size in its node's inventory.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use tessera_core::annotations::{Assignment, decode_assignment, decode_inventory};
use tessera_core::keys;

/// Totals per GPU UUID.
#[derive(Debug, Default, Clone, Copy)]
pub struct Held {
    pub mem_mib: u64,
    pub core_milli: u32,
    pub shares: u32,
}

/// The result of one audit.
#[derive(Debug, Default)]
pub struct Audit {
    /// Pods bound to a node.
    pub bound: usize,
    /// Bound pods carrying an assignment.
    pub assigned: usize,
    /// Per GPU.
    pub per_gpu: HashMap<String, Held>,
    /// Every way the cluster is wrong; empty when it is right.
    pub faults: Vec<String>,
}

/// A pod's assignment, if it has one.
pub fn assignment(pod: &Pod) -> Option<Assignment> {
    let text = pod
        .metadata
        .annotations
        .as_ref()?
        .get(keys::ANNOTATION_GPU_ASSIGNMENT)?;
    Some(decode_assignment(text).expect("a decodable gpu-assignment"))
}

/// Audits `pods` against the inventories of all nodes.
pub async fn audit(pods: &Api<Pod>, nodes: &Api<Node>) -> Audit {
    let mut sizes: HashMap<String, u64> = HashMap::new();
    for node in nodes.list(&Default::default()).await.expect("list nodes") {
        let inventory = node
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(keys::ANNOTATION_GPU_INVENTORY));
        if let Some(text) = inventory {
            for gpu in decode_inventory(text).expect("a decodable inventory").gpus {
                sizes.insert(gpu.uuid, gpu.memory_mib);
            }
        }
    }
    let mut out = Audit::default();
    for pod in pods.list(&Default::default()).await.expect("list pods") {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let Some(node) = node else { continue };
        out.bound += 1;
        let Some(a) = assignment(&pod) else { continue };
        out.assigned += 1;
        if a.node != node {
            out.faults
                .push(format!("{name}: bound to {node}, assigned on {}", a.node));
        }
        for s in a.shares() {
            let held = out.per_gpu.entry(s.uuid.clone()).or_default();
            held.mem_mib += s.mem_mib;
            held.core_milli += s.core_milli;
            held.shares += 1;
        }
    }
    for (uuid, held) in &out.per_gpu {
        match sizes.get(uuid) {
            None => out
                .faults
                .push(format!("{uuid}: assigned but in no node's inventory")),
            Some(size) if held.mem_mib > *size => out
                .faults
                .push(format!("{uuid}: {} MiB handed out of {size}", held.mem_mib)),
            Some(_) if held.core_milli > 1000 => out.faults.push(format!(
                "{uuid}: {}‰ of compute handed out",
                held.core_milli
            )),
            Some(_) => {}
        }
    }
    out
}
