//! Coexistence with another GPU device plugin (issue 31): Tessera serves a node only where no
//! other device plugin hands out the same GPUs.
//!
//! NVIDIA's device plugin (the GPU operator deploys it by default), HAMi's and their
//! time-slicing or MIG variants advertise `nvidia.com/gpu`, `nvidia.com/gpu.<suffix>` or
//! `nvidia.com/mig-<profile>`. Kubernetes does not know these are the GPUs Tessera also offers, so
//! one GPU could go to an `nvidia.com/gpu` pod and to Tessera shares at once, and Tessera's MPS
//! daemon puts every GPU it holds in EXCLUSIVE_PROCESS. The rule is the simplest safe one: while
//! the node's `status.capacity` or `status.allocatable` shows any such resource above zero, the
//! device plugin refuses the node — every GPU offered Unhealthy, readiness false with the reason.
//! Capacity counts too because the kubelet keeps a departed plugin's devices there (unhealthy)
//! until its grace period ends, and pods may still hold them.

use std::collections::BTreeMap;

use crate::inventory::GpuInfo;

/// NVIDIA's whole-GPU resource.
pub const NVIDIA_GPU: &str = "nvidia.com/gpu";

/// Another device plugin advertises this node's GPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The resource it advertises (`nvidia.com/gpu`).
    pub resource: String,
    /// Its quantity in the node's status, as written there.
    pub quantity: String,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node advertises {}={} from another device plugin; Tessera offers no share on a node \
             whose GPUs another plugin hands out (disable that plugin on this node)",
            self.resource, self.quantity
        )
    }
}

/// Whether `resource` is one another plugin uses for the node's NVIDIA GPUs.
pub fn is_foreign_gpu_resource(resource: &str) -> bool {
    resource == NVIDIA_GPU
        || resource.starts_with("nvidia.com/gpu.")
        || resource.starts_with("nvidia.com/mig-")
}

/// The first foreign GPU resource above zero in the node's capacity or allocatable. A quantity
/// that does not read as a whole number counts as above zero: refusing is the safe side.
pub fn conflict(
    capacity: &BTreeMap<String, String>,
    allocatable: &BTreeMap<String, String>,
) -> Option<Conflict> {
    capacity
        .iter()
        .chain(allocatable)
        .filter(|(name, _)| is_foreign_gpu_resource(name))
        .find(|(_, quantity)| crate::quantity::parse_whole(quantity).map_or(true, |n| n > 0))
        .map(|(name, quantity)| Conflict {
            resource: name.clone(),
            quantity: quantity.clone(),
        })
}

/// Marks every GPU unhealthy while `conflict` holds, so its slots go Unhealthy (the kubelet
/// admits no `tessera.dev/gpu` pod) and the inventory offers the extender nothing here.
pub fn apply(gpus: &mut [GpuInfo], conflict: Option<&Conflict>) {
    if conflict.is_some() {
        for gpu in gpus {
            gpu.healthy = false;
        }
    }
}

#[cfg(test)]
mod tests;
