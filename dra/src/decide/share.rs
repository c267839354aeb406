//! What a ResourceClaim's allocation gives a container on this node: for each allocation
//! result of this driver in this node's pool, the GPU and the share it consumed, and from them
//! the env and mounts the device plugin's `Allocate` would give a container holding the same
//! shares (`tessera_core::plugin::{env, mps}`).
//!
//! The share is read from `status.allocation.devices.results[].consumedCapacity` (`memory` in
//! bytes, `compute` in percent), which the scheduler rounded up to the slice's request policy.
//! A result without it (a device that was not shareable when allocated) holds the whole GPU.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::resource::v1::{DeviceRequestAllocationResult, ResourceClaim};
use tessera_core::annotations::GpuShare;
use tessera_core::inventory::GpuInfo;
use tessera_core::plugin::env;
use tessera_core::plugin::mps::{self, MountSpec, ShareRefused};
use thiserror::Error;

use crate::decide::slice;
use crate::names;

/// One allocation result of this driver: which request, which device, what share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocated {
    /// The claim's request (or `request/subrequest`) it serves.
    pub request: String,
    /// The pool (this node).
    pub pool: String,
    /// The device (`gpu-N`).
    pub device: String,
    /// The GPU and the share of it.
    pub share: GpuShare,
}

/// What a prepared claim puts into each container that uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimEdits {
    /// The allocation results served, in the claim's order.
    pub allocated: Vec<Allocated>,
    /// Env, as `Allocate` gives it for the same shares.
    pub env: BTreeMap<String, String>,
    /// The MPS pipe directory and the shared `/dev/shm`, when the GPUs are behind MPS.
    pub mounts: Vec<MountSpec>,
}

/// Why a claim cannot be prepared on this node.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ClaimRefused {
    /// The claim has no allocation (yet, or any more).
    #[error("claim {claim} is not allocated")]
    NotAllocated {
        /// `namespace/name`.
        claim: String,
    },
    /// No allocation result is ours on this node.
    #[error("claim {claim} has no device of driver {driver} in pool {pool}")]
    NoDevice {
        /// `namespace/name`.
        claim: String,
        /// Our driver.
        driver: String,
        /// This node's pool.
        pool: String,
    },
    /// A result names a device this node does not have.
    #[error("claim {claim} names device {device}, which node {pool} does not have")]
    UnknownDevice {
        /// `namespace/name`.
        claim: String,
        /// The device named.
        device: String,
        /// This node's pool.
        pool: String,
    },
    /// A consumed capacity is not a whole quantity of the unit we publish.
    #[error("claim {claim}: consumed {capacity} {value:?} is not a whole quantity")]
    BadQuantity {
        /// `namespace/name`.
        claim: String,
        /// The capacity name.
        capacity: String,
        /// The value found.
        value: String,
    },
    /// The GPU cannot take the share now (the device plugin's rule).
    #[error("claim {claim}: {reason}")]
    Refused {
        /// `namespace/name`.
        claim: String,
        /// Why.
        #[source]
        reason: ShareRefused,
    },
}

/// The edits for `claim` on `node`, whose GPUs are `gpus` (isolation applied), with MPS under
/// `mps_root` when isolation is on.
pub fn claim_edits(
    claim: &ResourceClaim,
    node: &str,
    gpus: &[GpuInfo],
    mps_root: Option<&Path>,
) -> Result<ClaimEdits, ClaimRefused> {
    let key = claim_key(claim);
    let results = claim
        .status
        .as_ref()
        .and_then(|s| s.allocation.as_ref())
        .and_then(|a| a.devices.as_ref())
        .and_then(|d| d.results.as_deref())
        .ok_or_else(|| ClaimRefused::NotAllocated { claim: key.clone() })?;
    let ours: Vec<&DeviceRequestAllocationResult> = results
        .iter()
        .filter(|r| r.driver == names::DRIVER && r.pool == node)
        .collect();
    if ours.is_empty() {
        return Err(ClaimRefused::NoDevice {
            claim: key,
            driver: names::DRIVER.into(),
            pool: node.into(),
        });
    }
    let allocated = ours
        .into_iter()
        .map(|r| allocated(r, gpus, &key))
        .collect::<Result<Vec<_>, _>>()?;
    let shares: Vec<GpuShare> = allocated.iter().map(|a| a.share.clone()).collect();
    let client =
        mps::client_for(node, &shares, gpus, mps_root).map_err(|reason| ClaimRefused::Refused {
            claim: key.clone(),
            reason,
        })?;
    // `Allocate` names the pod's container here; a claim is prepared before any container
    // exists, so it names the claim.
    let mut env = env::container_env(&shares, &key);
    let mounts = client.map_or_else(Vec::new, |c| {
        env.extend(c.env);
        c.mounts
    });
    Ok(ClaimEdits {
        allocated,
        env,
        mounts,
    })
}

/// `namespace/name` of a claim.
pub fn claim_key(claim: &ResourceClaim) -> String {
    format!(
        "{}/{}",
        claim.metadata.namespace.as_deref().unwrap_or_default(),
        claim.metadata.name.as_deref().unwrap_or_default()
    )
}

fn allocated(
    result: &DeviceRequestAllocationResult,
    gpus: &[GpuInfo],
    claim: &str,
) -> Result<Allocated, ClaimRefused> {
    let gpu = gpus
        .iter()
        .find(|g| slice::device_name(g.index) == result.device)
        .ok_or_else(|| ClaimRefused::UnknownDevice {
            claim: claim.into(),
            device: result.device.clone(),
            pool: result.pool.clone(),
        })?;
    let consumed = |name: &str| -> Result<Option<u64>, ClaimRefused> {
        let Some(q) = result.consumed_capacity.as_ref().and_then(|c| c.get(name)) else {
            return Ok(None);
        };
        tessera_core::quantity::parse_whole(&q.0)
            .map(Some)
            .map_err(|_| ClaimRefused::BadQuantity {
                claim: claim.into(),
                capacity: name.into(),
                value: q.0.clone(),
            })
    };
    let mem_mib = consumed(names::CAPACITY_MEMORY)?.map_or(gpu.memory_mib, |b| b >> 20);
    let percent = consumed(names::CAPACITY_COMPUTE)?.unwrap_or(slice::COMPUTE_WHOLE_PERCENT);
    let core_milli = u32::try_from(percent.min(slice::COMPUTE_WHOLE_PERCENT) * 10).unwrap_or(1000);
    Ok(Allocated {
        request: result.request.clone(),
        pool: result.pool.clone(),
        device: result.device.clone(),
        share: GpuShare {
            uuid: gpu.uuid.clone(),
            mem_mib,
            core_milli,
        },
    })
}

#[cfg(test)]
mod tests;
