//! What the scheduler needs from a ResourceSlice, a ResourceClaim or a ResourceClaimTemplate,
//! read once per watch event: the state keeps these small records, never the objects. Only
//! driver `gpu.tessera.dev` is read; every other driver's devices and results are skipped.

use k8s_openapi::api::resource::v1::{
    Device, DeviceRequest, ResourceClaim, ResourceClaimSpec, ResourceSlice,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity::parse_whole;
use crate::request::{GpuDemand, MILLI_PER_GPU};

use super::{CAPACITY_COMPUTE, CAPACITY_MEMORY, DRIVER};

/// One GPU of a slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFacts {
    /// Device name in the pool (`gpu-N`).
    pub name: String,
    /// NVML index (attribute `index`; the position in the slice when absent).
    pub index: u32,
    /// Product name (attribute `productName`).
    pub model: String,
    /// Capacity `memory`, MiB (rounded down).
    pub memory_mib: u64,
    /// Keys of the taints that keep new allocations off (`NoSchedule`, `NoExecute`).
    pub taints: Vec<String>,
    /// Attribute `mpsMultiUser`: the live MPS server serves any user.
    pub multi_user: bool,
}

/// A ResourceSlice of the driver, published for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceFacts {
    /// The slice's name.
    pub name: String,
    /// `spec.nodeName`: the node whose GPUs these are.
    pub node: String,
    /// `spec.pool.name` (the driver names its pool after the node).
    pub pool: String,
    /// The GPUs.
    pub devices: Vec<DeviceFacts>,
}

impl SliceFacts {
    /// The slice's facts; `None` for another driver's slice or one not bound to a node.
    pub fn from_slice(slice: &ResourceSlice) -> Option<Self> {
        let spec = &slice.spec;
        if spec.driver != DRIVER {
            return None;
        }
        let node = spec.node_name.clone().filter(|n| !n.is_empty())?;
        let devices = spec.devices.iter().flatten().enumerate();
        Some(SliceFacts {
            name: slice.metadata.name.clone().unwrap_or_default(),
            node,
            pool: spec.pool.name.clone(),
            devices: devices.map(|(i, d)| device(i, d)).collect(),
        })
    }
}

fn device(position: usize, d: &Device) -> DeviceFacts {
    let attr = |k: &str| d.attributes.as_ref().and_then(|a| a.get(k));
    let memory = d
        .capacity
        .as_ref()
        .and_then(|c| c.get(CAPACITY_MEMORY))
        .and_then(|c| parse_whole(&c.value.0).ok())
        .unwrap_or(0);
    let taints = d.taints.iter().flatten();
    DeviceFacts {
        name: d.name.clone(),
        index: attr(super::ATTR_INDEX)
            .and_then(|a| a.int)
            .and_then(|i| u32::try_from(i).ok())
            .unwrap_or(u32::try_from(position).unwrap_or(u32::MAX)),
        model: attr(super::ATTR_PRODUCT_NAME)
            .and_then(|a| a.string.clone())
            .unwrap_or_default(),
        memory_mib: memory >> 20,
        // PreferNoSchedule and the like still allow an allocation.
        taints: taints
            .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
            .map(|t| t.key.clone())
            .collect(),
        multi_user: attr(super::ATTR_MPS_MULTI_USER)
            .and_then(|a| a.bool)
            .unwrap_or(false),
    }
}

/// One request of the driver's DeviceClass: its name and what it asks of each GPU, or why
/// Tessera cannot say (it is then left to kube-scheduler's allocator alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestShape {
    /// The request's name in the claim.
    pub request: String,
    /// Per GPU, as the device-plugin path asks it.
    pub demand: Result<GpuDemand, String>,
}

/// One share an allocated claim holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldShare {
    /// The request it answers.
    pub request: String,
    /// Pool (the node's name for this driver).
    pub pool: String,
    /// Device in the pool.
    pub device: String,
    /// `consumedCapacity.memory`, MiB rounded up (`None`: the whole GPU).
    pub mem_mib: Option<u64>,
    /// `consumedCapacity.compute` in thousandths (`None`: the whole GPU).
    pub core_milli: Option<u32>,
}

/// A ResourceClaim as far as Tessera reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimFacts {
    /// `namespace/name`.
    pub key: String,
    /// Its requests of the driver's DeviceClass.
    pub requests: Vec<RequestShape>,
    /// `status.allocation.devices.results` of the driver (empty: not allocated here).
    pub held: Vec<HeldShare>,
    /// Allocated at all (to any driver): a pod sharing it adds nothing new.
    pub allocated: bool,
}

impl ClaimFacts {
    /// The claim's facts.
    pub fn from_claim(claim: &ResourceClaim) -> Self {
        let meta = &claim.metadata;
        let key = format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.as_deref().unwrap_or_default()
        );
        let allocation = claim.status.as_ref().and_then(|s| s.allocation.as_ref());
        let results = allocation
            .and_then(|a| a.devices.as_ref())
            .and_then(|d| d.results.as_deref())
            .unwrap_or_default();
        let held = results
            .iter()
            .filter(|r| r.driver == DRIVER)
            .map(|r| {
                let consumed = |k: &str| {
                    r.consumed_capacity
                        .as_ref()
                        .and_then(|c| c.get(k))
                        .and_then(|q| parse_whole(&q.0).ok())
                };
                HeldShare {
                    request: r.request.clone(),
                    pool: r.pool.clone(),
                    device: r.device.clone(),
                    mem_mib: consumed(CAPACITY_MEMORY).map(|b| b.div_ceil(1 << 20)),
                    core_milli: consumed(CAPACITY_COMPUTE).map(percent_to_milli),
                }
            })
            .collect();
        ClaimFacts {
            key,
            requests: spec_requests(&claim.spec),
            held,
            allocated: allocation.is_some(),
        }
    }
}

/// The requests of the driver's DeviceClass in a claim (or a template's) spec.
pub fn spec_requests(spec: &ResourceClaimSpec) -> Vec<RequestShape> {
    let requests = spec.devices.as_ref().and_then(|d| d.requests.as_deref());
    requests
        .unwrap_or_default()
        .iter()
        .filter_map(super::request_demand)
        .collect()
}

/// Percent of compute in thousandths, capped at the whole GPU.
pub(super) fn percent_to_milli(percent: u64) -> u32 {
    u32::try_from(percent.saturating_mul(10))
        .unwrap_or(MILLI_PER_GPU)
        .min(MILLI_PER_GPU)
}

/// A capacity request in the unit the ledger counts, with the grid the allocator rounds to.
pub(super) fn requested(request: &DeviceRequest, key: &str) -> Option<Result<u64, String>> {
    let q: &Quantity = request
        .exactly
        .as_ref()?
        .capacity
        .as_ref()?
        .requests
        .as_ref()?
        .get(key)?;
    Some(parse_whole(&q.0).map_err(|e| format!("capacity {key}: {e}")))
}
