//! The ResourceSlice a node's GPUs become: one pool named after the node, one device per GPU
//! with its attributes, consumable `memory` and `compute` capacity that several claims may
//! share, and taints on every GPU that cannot take a share now.
//!
//! Which GPU can take a share is the device plugin's rule (`tessera_core::plugin::mps`): a GPU
//! whose isolation is not live (no ready MPS daemon holds it) would run its clients unlimited,
//! so it is tainted `gpu.tessera.dev/mps-not-ready` (NoSchedule); a claim that wants a whole GPU
//! without MPS may tolerate that taint. A GPU NVML lost is tainted `gpu.tessera.dev/unhealthy`.
//!
//! Request policies are what MPS can enforce: `CUDA_MPS_PINNED_DEVICE_MEM_LIMIT` is given in MiB
//! and a client's pinned memory is rounded by the driver, so memory goes in 256 MiB steps from
//! 256 MiB; `CUDA_MPS_ACTIVE_THREAD_PERCENTAGE` is a whole percent, so compute goes in 1% steps
//! from 1%. A request that names no amount takes the whole GPU (the defaults), as a plain
//! device request would.

use std::collections::BTreeMap;

use k8s_openapi::api::resource::v1::{
    CapacityRequestPolicy, CapacityRequestPolicyRange, Device, DeviceAttribute, DeviceCapacity,
    DeviceTaint, ResourcePool, ResourceSlice, ResourceSliceSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use tessera_core::inventory::GpuInfo;
use tessera_core::plugin::mps::{self, MpsStatus};

use crate::names;

/// Memory request granularity and minimum, bytes (256 MiB).
pub const MEMORY_STEP_BYTES: u64 = tessera_core::dra::MEMORY_STEP_BYTES;
/// Compute request granularity and minimum, percent.
pub const COMPUTE_STEP_PERCENT: u64 = 1;
/// Compute capacity of one GPU, percent.
pub const COMPUTE_WHOLE_PERCENT: u64 = 100;

/// The node's GPUs as the slice needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeGpus {
    /// Node name (the pool and the slice's `nodeName`).
    pub node: String,
    /// The Node's UID, for the owner reference that deletes the slice with its Node.
    pub node_uid: String,
    /// GPUs with their health as NVML sees it (isolation not yet applied).
    pub gpus: Vec<GpuInfo>,
    /// The NVIDIA driver version, when NVML told it.
    pub driver_version: Option<String>,
}

/// The ResourceSlice's name for `node` (one slice per node for this driver).
pub fn slice_name(node: &str) -> String {
    format!("{node}-{}", names::DRIVER)
}

/// The device name of GPU `index` (a DNS label, stable across restarts).
pub fn device_name(index: u32) -> String {
    format!("gpu-{index}")
}

/// The GPUs with the MPS daemon's status applied by the device plugin's rule: isolation per
/// GPU, and MPS-capable GPUs unhealthy while no daemon is ready.
pub fn effective(gpus: &[GpuInfo], live: Option<&MpsStatus>) -> Vec<GpuInfo> {
    let mut gpus = gpus.to_vec();
    mps::apply_status(&mut gpus, live);
    gpus
}

/// The slice for `node` given the live MPS status, at pool `generation`.
pub fn resource_slice(node: &NodeGpus, live: Option<&MpsStatus>, generation: i64) -> ResourceSlice {
    let isolated = effective(&node.gpus, live);
    let devices = node
        .gpus
        .iter()
        .zip(&isolated)
        .map(|(raw, iso)| device(raw, iso, node.driver_version.as_deref()))
        .collect();
    ResourceSlice {
        metadata: ObjectMeta {
            name: Some(slice_name(&node.node)),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node.node.clone(),
                uid: node.node_uid.clone(),
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: ResourceSliceSpec {
            driver: names::DRIVER.into(),
            node_name: Some(node.node.clone()),
            pool: ResourcePool {
                name: node.node.clone(),
                generation,
                resource_slice_count: 1,
            },
            devices: Some(devices),
            ..Default::default()
        },
    }
}

/// One GPU as a device: `raw` carries NVML health, `iso` the isolation applied.
fn device(raw: &GpuInfo, iso: &GpuInfo, driver_version: Option<&str>) -> Device {
    let mut attributes = BTreeMap::from([
        (names::ATTR_UUID.into(), string(&raw.uuid)),
        (names::ATTR_PRODUCT_NAME.into(), string(&raw.model)),
        (names::ATTR_INDEX.into(), int(i64::from(raw.index))),
        (
            names::ATTR_MPS_ISOLATION.into(),
            boolean(iso.isolation.is_live()),
        ),
        (
            names::ATTR_MPS_MULTI_USER.into(),
            boolean(iso.isolation == tessera_core::inventory::Isolation::MpsMultiUser),
        ),
    ]);
    if let Some(v) = driver_version {
        attributes.insert(names::ATTR_DRIVER_VERSION.into(), string(v));
    }
    let mut taints = Vec::new();
    if !raw.healthy {
        taints.push(taint(names::TAINT_UNHEALTHY));
    }
    if !iso.isolation.is_live() {
        taints.push(taint(names::TAINT_MPS_NOT_READY));
    }
    Device {
        name: device_name(raw.index),
        attributes: Some(attributes),
        capacity: Some(capacity(raw.memory_mib)),
        allow_multiple_allocations: Some(true),
        taints: (!taints.is_empty()).then_some(taints),
        ..Default::default()
    }
}

/// `memory` (bytes) and `compute` (percent) with the request policies MPS can enforce.
fn capacity(memory_mib: u64) -> BTreeMap<String, DeviceCapacity> {
    let total = memory_mib.saturating_mul(1 << 20);
    // The default (a request naming no memory) must sit on the step grid: the whole GPU
    // rounded down to a step.
    let whole = total / MEMORY_STEP_BYTES * MEMORY_STEP_BYTES;
    BTreeMap::from([
        (
            names::CAPACITY_MEMORY.into(),
            policy(
                total,
                whole.max(MEMORY_STEP_BYTES),
                MEMORY_STEP_BYTES,
                MEMORY_STEP_BYTES,
            ),
        ),
        (
            names::CAPACITY_COMPUTE.into(),
            // From 0: a memory share alone holds no compute (and MPS sets it no thread limit),
            // as on the device-plugin path; a claim naming no compute takes the whole GPU's.
            policy(
                COMPUTE_WHOLE_PERCENT,
                COMPUTE_WHOLE_PERCENT,
                0,
                COMPUTE_STEP_PERCENT,
            ),
        ),
    ])
}

fn policy(value: u64, default: u64, min: u64, step: u64) -> DeviceCapacity {
    DeviceCapacity {
        value: quantity(value),
        request_policy: Some(CapacityRequestPolicy {
            default: Some(quantity(default)),
            valid_range: Some(CapacityRequestPolicyRange {
                min: quantity(min),
                step: Some(quantity(step)),
                max: None,
            }),
            valid_values: None,
        }),
    }
}

fn quantity(v: u64) -> Quantity {
    Quantity(v.to_string())
}

fn taint(key: &str) -> DeviceTaint {
    DeviceTaint {
        key: key.into(),
        effect: names::EFFECT_NO_SCHEDULE.into(),
        value: None,
        time_added: None,
    }
}

fn string(v: &str) -> DeviceAttribute {
    DeviceAttribute {
        string: Some(v.into()),
        ..Default::default()
    }
}

fn int(v: i64) -> DeviceAttribute {
    DeviceAttribute {
        int: Some(v),
        ..Default::default()
    }
}

fn boolean(v: bool) -> DeviceAttribute {
    DeviceAttribute {
        bool: Some(v),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
