//! What a claim-bearing pod asks: each pod-level `resourceClaims` entry names a ResourceClaim or
//! a ResourceClaimTemplate; each request of the driver's DeviceClass in it becomes one demand
//! of the device-plugin path (GPU count, MiB and thousandths per GPU), read from the request's
//! `capacity.requests`, never from the template's name. A claim already allocated costs nothing
//! new: another pod's share, or this pod's own from an earlier attempt, is in the ledger already.
//!
//! Defaults are the driver's request policies: a request that names no `memory` takes the whole
//! GPU's, and no `compute` takes 100% (so it holds the GPU whole); memory is rounded up to the
//! 256 MiB grid, as the allocator rounds it.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::resource::v1::DeviceRequest;

use crate::request::{ContainerDemand, GpuDemand, MILLI_PER_GPU, PodRequest};

use super::facts::{RequestShape, percent_to_milli, requested};
use super::{CAPACITY_COMPUTE, CAPACITY_MEMORY, DRIVER, DraCluster, MEMORY_STEP_BYTES};

/// One pod-level claim entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRef {
    /// The entry's name in the pod.
    pub name: String,
    /// The ResourceClaim: named by the pod, or generated from the template (from the pod's
    /// `status.resourceClaimStatuses`, once the resourceclaim controller made it).
    pub claim: Option<String>,
    /// The ResourceClaimTemplate, if the entry names one.
    pub template: Option<String>,
}

/// A pod's claim entries, in its namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodClaims {
    /// The pod's namespace.
    pub namespace: String,
    /// `spec.resourceClaims`.
    pub refs: Vec<ClaimRef>,
}

impl PodClaims {
    /// The claim references of `pod` (the one place the extender reads them).
    pub fn from_pod(pod: &Pod) -> Self {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let generated = pod
            .status
            .as_ref()
            .and_then(|s| s.resource_claim_statuses.as_deref())
            .unwrap_or_default();
        let entries = pod.spec.as_ref().and_then(|s| s.resource_claims.as_deref());
        let refs = entries
            .unwrap_or_default()
            .iter()
            .map(|c| ClaimRef {
                name: c.name.clone(),
                claim: c.resource_claim_name.clone().or_else(|| {
                    generated
                        .iter()
                        .find(|g| g.name == c.name)
                        .and_then(|g| g.resource_claim_name.clone())
                }),
                template: c.resource_claim_template_name.clone(),
            })
            .collect();
        PodClaims {
            namespace: namespace.to_string(),
            refs,
        }
    }

    /// True when the pod names no claim (no DRA demand at all).
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }
}

/// Why a claim pod's demand cannot be told yet, or at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DemandError {
    /// The pod names a claim the extender has not seen (just created, or the watch lags).
    #[error("ResourceClaim {claim} is not known to the extender yet; retry")]
    UnknownClaim {
        /// `namespace/name`.
        claim: String,
    },
    /// The pod names a template the extender has not seen.
    #[error("ResourceClaimTemplate {template} is not known to the extender yet; retry")]
    UnknownTemplate {
        /// `namespace/name`.
        template: String,
    },
}

/// The shape of one request of the driver's DeviceClass; `None` for any other request.
pub fn request_demand(request: &DeviceRequest) -> Option<RequestShape> {
    let ours = |class: &str| class == DRIVER;
    let demand = match (&request.exactly, &request.first_available) {
        (Some(exact), _) if ours(&exact.device_class_name) => exact_demand(request),
        (None, Some(subs)) if subs.iter().any(|s| ours(&s.device_class_name)) => {
            Err("a firstAvailable list is left to kube-scheduler's allocator".to_string())
        }
        _ => return None,
    };
    Some(RequestShape {
        request: request.name.clone(),
        demand,
    })
}

fn exact_demand(request: &DeviceRequest) -> Result<GpuDemand, String> {
    let exact = request.exactly.as_ref().ok_or("no exactly")?;
    if exact.allocation_mode.as_deref() == Some("All") {
        return Err("allocationMode All is left to kube-scheduler's allocator".to_string());
    }
    let gpus = u32::try_from(exact.count.unwrap_or(1).max(1)).map_err(|e| e.to_string())?;
    let memory = requested(request, CAPACITY_MEMORY).transpose()?;
    let compute = requested(request, CAPACITY_COMPUTE).transpose()?;
    // No compute named: the plugin's default, the whole GPU. `compute: 0` (a memory share
    // alone, as the webhook asks it) holds none, as the plugin's policy allows.
    let core_milli = compute.map_or(MILLI_PER_GPU, percent_to_milli);
    Ok(GpuDemand {
        gpus,
        mem_mib: memory.map_or(0, |b| {
            b.max(1).div_ceil(MEMORY_STEP_BYTES) * (MEMORY_STEP_BYTES >> 20)
        }),
        mem_percent: if memory.is_none() { 100 } else { 0 },
        core_milli,
    })
}

impl DraCluster {
    /// The pod's new GPU demand on the DRA path: `Ok(None)` when its claims ask nothing of the
    /// driver, or nothing new (all allocated), or only what Tessera leaves to the allocator.
    pub fn pod_request(&self, pod: &PodClaims) -> Result<Option<PodRequest>, DemandError> {
        let mut containers = Vec::new();
        for r in &pod.refs {
            let key = |name: &str| format!("{}/{name}", pod.namespace);
            let claim = r.claim.as_deref().map(key);
            let shapes = match (claim.as_deref().map(|k| self.claim(k)), &r.template) {
                (Some(Some(c)), _) if c.allocated => continue,
                (Some(Some(c)), _) => &c.requests,
                (Some(None), None) => {
                    return Err(DemandError::UnknownClaim {
                        claim: claim.unwrap_or_default(),
                    });
                }
                (_, Some(t)) => self
                    .template(&key(t))
                    .ok_or_else(|| DemandError::UnknownTemplate { template: key(t) })?,
                (None, None) => continue,
            };
            for s in shapes {
                if let Ok(demand) = s.demand {
                    containers.push(ContainerDemand {
                        container: format!("{}/{}", r.name, s.request),
                        demand,
                    });
                }
            }
        }
        Ok((!containers.is_empty()).then(|| PodRequest {
            containers,
            ..PodRequest::default()
        }))
    }
}
