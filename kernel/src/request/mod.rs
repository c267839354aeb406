//! The effective GPU-sharing request of a pod, per container.
//!
//! Reads `tessera.dev/gpu`, `gpu-mem` (MiB) and `gpu-core` (percent) from each container's limits
//! (requests when limits are absent), and, when a profile opts in, translates gpushare
//! (`aliyun.com/…`) and HAMi (`nvidia.com/…`) names (DESIGN.md, "GPU-sharing requests").
//! Every invalid request is refused with the container, resource and value that were wrong.
//! Host CPU and memory are read too: the simulator accounts them, the extender leaves them to
//! kube-scheduler.

mod group;
mod init;
mod run_as;
#[cfg(test)]
mod tests;

pub use group::{Group, LABEL_GROUP_SIZE, pod_group};
pub use init::{InitDemand, is_sidecar};
pub use run_as::{RunAs, run_as};

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use thiserror::Error;

use crate::keys;
use crate::quantity::{self, QuantityError};

/// Compute is accounted in thousandths of a GPU: 1000 is a whole GPU (`gpu-core: 100`).
pub const MILLI_PER_GPU: u32 = 1000;

/// What one container needs on each of its GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GpuDemand {
    /// Number of distinct physical GPUs.
    pub gpus: u32,
    /// MiB of GPU memory on each GPU (0: none reserved).
    pub mem_mib: u64,
    /// Percent of each GPU's memory (0: unset); HAMi's `gpumem-percentage`.
    pub mem_percent: u32,
    /// Thousandths of each GPU's compute; 1000 means the GPU is held exclusively.
    pub core_milli: u32,
}

// The accessors below run per GPU and node when core scores: `#[inline]` keeps them inlined
// across the crate line (measured: binpack and spread were slower without it).
impl GpuDemand {
    /// N whole GPUs, held exclusively.
    pub fn whole(gpus: u32) -> Self {
        GpuDemand {
            gpus,
            mem_mib: 0,
            mem_percent: 0,
            core_milli: MILLI_PER_GPU,
        }
    }

    /// True when each GPU is held whole (no other share may sit beside it).
    #[inline]
    pub fn exclusive(&self) -> bool {
        self.core_milli >= MILLI_PER_GPU
    }

    /// MiB needed on a GPU with `total_mib` of memory.
    #[inline]
    pub fn mem_on(&self, total_mib: u64) -> u64 {
        if self.exclusive() {
            return total_mib;
        }
        if self.mem_percent == 0 {
            // The common case, kept free of a division: this runs per GPU per class when scoring.
            return self.mem_mib;
        }
        let by_percent = total_mib * u64::from(self.mem_percent) / 100;
        self.mem_mib.max(by_percent)
    }

    /// Thousandths of a GPU over all the container's GPUs (the allocation-ratio numerator).
    #[inline]
    pub fn total_milli(&self) -> u64 {
        u64::from(self.gpus) * u64::from(self.core_milli)
    }
}

/// One container's GPU demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDemand {
    /// Container name.
    pub container: String,
    /// What it needs.
    pub demand: GpuDemand,
}

/// Everything the scheduler side needs to know about a pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodRequest {
    /// Containers that asked for GPUs and hold them together for the pod's life, in spec order:
    /// native sidecars (init containers with `restartPolicy: Always`) first, then app containers.
    pub containers: Vec<ContainerDemand>,
    /// Ordinary init containers that asked for GPUs, in spec order; each runs alone before the
    /// app containers (the init rule in `init.rs`).
    pub init: Vec<InitDemand>,
    /// Allowed GPU models (empty: any).
    pub models: Vec<String>,
    /// Host CPU in millicores, summed over containers by Kubernetes' init rule.
    pub cpu_milli: u64,
    /// Host memory in MiB, summed over containers by Kubernetes' init rule.
    pub mem_mib: u64,
    /// Anti-affinity group, if any.
    pub group: Option<Group>,
    /// Pod priority (higher wins preemption).
    pub priority: i32,
    /// The user its GPU containers run as (single-user MPS nodes keep to one).
    pub run_as: RunAs,
}

// Per node when core scores, like `GpuDemand`'s accessors.
impl PodRequest {
    /// True when the pod needs neither GPU shares nor spreading: the extender passes it through.
    #[inline]
    pub fn is_pass_through(&self) -> bool {
        !self.holds_gpus() && self.group.is_none()
    }

    /// True when any container, init containers included, asked for GPUs.
    #[inline]
    pub fn holds_gpus(&self) -> bool {
        !self.containers.is_empty() || !self.init.is_empty()
    }

    /// Thousandths of a GPU the whole pod needs at once, by the init rule: the larger of
    /// everything running together and each init container beside the sidecars before it.
    #[inline]
    pub fn total_gpu_milli(&self) -> u64 {
        let milli =
            |cs: &[ContainerDemand]| -> u64 { cs.iter().map(|c| c.demand.total_milli()).sum() };
        let together = milli(&self.containers);
        self.init
            .iter()
            .map(|i| {
                let before = &self.containers[..i.sidecars_before.min(self.containers.len())];
                i.container.demand.total_milli() + milli(before)
            })
            .fold(together, u64::max)
    }

    /// True when `model` satisfies the pod's model constraint.
    #[inline]
    pub fn allows_model(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| m == model)
    }
}

/// Which foreign request names a profile translates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Translation {
    /// gpushare: `aliyun.com/gpu-mem` (GiB) and `aliyun.com/gpu-count`.
    pub gpushare: bool,
    /// HAMi: `nvidia.com/gpu`, `gpumem`, `gpucores`, `gpumem-percentage`.
    pub hami: bool,
}

/// Why a pod's GPU request is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    /// A quantity that is not a whole number.
    #[error("container {container:?}: {resource} = {value:?}: {source}")]
    Quantity {
        /// Container name.
        container: String,
        /// Resource name.
        resource: String,
        /// Offending value.
        value: String,
        /// Parse failure.
        #[source]
        source: QuantityError,
    },
    /// Zero where at least one is needed.
    #[error("container {container:?}: {resource} must be at least 1, got 0")]
    Zero {
        /// Container name.
        container: String,
        /// Resource name.
        resource: String,
    },
    /// A percentage outside 1–100.
    #[error("container {container:?}: {resource} = {value} is outside 1..=100 percent")]
    PercentOutOfRange {
        /// Container name.
        container: String,
        /// Resource name.
        resource: String,
        /// Offending value.
        value: u64,
    },
    /// More memory per GPU than the largest GPU in the cluster has.
    #[error(
        "container {container:?}: {resource} asks {requested_mib} MiB per GPU, the largest GPU has {largest_mib} MiB"
    )]
    MemoryExceedsLargestGpu {
        /// Container name.
        container: String,
        /// Resource name.
        resource: String,
        /// MiB asked.
        requested_mib: u64,
        /// MiB of the largest GPU known.
        largest_mib: u64,
    },
    /// Two names that say the same thing.
    #[error("container {container:?}: {first} and {second} both set the GPU {what}; use one")]
    Conflicting {
        /// Container name.
        container: String,
        /// First resource name.
        first: String,
        /// Second resource name.
        second: String,
        /// What they both set (count, memory, compute).
        what: &'static str,
    },
    /// Requests and limits disagree for an extended resource.
    #[error("container {container:?}: {resource} request {request:?} differs from limit {limit:?}")]
    RequestLimitMismatch {
        /// Container name.
        container: String,
        /// Resource name.
        resource: String,
        /// Request value.
        request: String,
        /// Limit value.
        limit: String,
    },
}

/// Context for validating requests against the cluster.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestContext {
    /// Foreign names to translate.
    pub translation: Translation,
    /// MiB of the largest GPU known; `None` skips that check.
    pub largest_gpu_mib: Option<u64>,
}

/// The effective request of `pod`.
pub fn pod_request(pod: &Pod, ctx: RequestContext) -> Result<PodRequest, RequestError> {
    let mut request = PodRequest::default();
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(request);
    };
    let mut host = init::HostPhases::default();
    for container in spec.init_containers.iter().flatten() {
        let demand = container_demand(container, ctx)?;
        let named = |demand| ContainerDemand {
            container: container.name.clone(),
            demand,
        };
        if is_sidecar(container) {
            host.sidecar(init::host_request(container));
            request.containers.extend(demand.map(named));
        } else {
            host.init(init::host_request(container));
            // Sidecars precede the app containers in `containers`, so its length so far
            // counts the GPU sidecars started before this one.
            let sidecars_before = request.containers.len();
            request.init.extend(demand.map(|d| InitDemand {
                container: named(d),
                sidecars_before,
            }));
        }
    }
    for container in &spec.containers {
        host.app(init::host_request(container));
        if let Some(demand) = container_demand(container, ctx)? {
            request.containers.push(ContainerDemand {
                container: container.name.clone(),
                demand,
            });
        }
    }
    (request.cpu_milli, request.mem_mib) = host.effective();
    request.models = pod_models(pod);
    request.group = pod_group(pod);
    request.priority = spec.priority.unwrap_or(0);
    let names = request
        .containers
        .iter()
        .chain(request.init.iter().map(|i| &i.container));
    request.run_as = run_as(pod, names.map(|c| c.container.as_str()));
    Ok(request)
}

fn pod_models(pod: &Pod) -> Vec<String> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(keys::ANNOTATION_GPU_MODELS))
        .map(|v| split_models(v))
        .unwrap_or_default()
}

/// Splits a `|`-separated model list, dropping blanks.
pub fn split_models(value: &str) -> Vec<String> {
    value
        .split('|')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect()
}

/// True when two extended-resource quantities are the same number (`1Ki` and `1024` are, as
/// the apiserver compares them); text that does not read as a whole number must match exactly.
fn same_value(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (crate::quantity::parse_whole(a), crate::quantity::parse_whole(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// Resource values of one container: limits, falling back to requests.
struct Values<'a> {
    container: &'a str,
    map: BTreeMap<&'a str, &'a Quantity>,
}

impl<'a> Values<'a> {
    fn of(container: &'a Container) -> Result<Self, RequestError> {
        let mut map = BTreeMap::new();
        let res = container.resources.as_ref();
        let limits = res.and_then(|r| r.limits.as_ref());
        let requests = res.and_then(|r| r.requests.as_ref());
        for (name, q) in requests.into_iter().flatten() {
            map.insert(name.as_str(), q);
        }
        for (name, q) in limits.into_iter().flatten() {
            if let Some(req) = map.get(name.as_str())
                && !same_value(&req.0, &q.0)
                && is_gpu_name(name)
            {
                return Err(RequestError::RequestLimitMismatch {
                    container: container.name.clone(),
                    resource: name.clone(),
                    request: req.0.clone(),
                    limit: q.0.clone(),
                });
            }
            map.insert(name.as_str(), q);
        }
        Ok(Values {
            container: &container.name,
            map,
        })
    }

    fn get(&self, resource: &str) -> Result<Option<u64>, RequestError> {
        let Some(q) = self.map.get(resource) else {
            return Ok(None);
        };
        quantity::parse_whole(&q.0)
            .map(Some)
            .map_err(|source| RequestError::Quantity {
                container: self.container.to_string(),
                resource: resource.to_string(),
                value: q.0.clone(),
                source,
            })
    }

    /// The first of several synonymous names that is set; two set is a conflict.
    fn one_of(
        &self,
        names: &[&'static str],
        what: &'static str,
    ) -> Result<Option<(&'static str, u64)>, RequestError> {
        let mut found: Option<(&'static str, u64)> = None;
        for name in names {
            if let Some(v) = self.get(name)? {
                if let Some((first, _)) = found {
                    return Err(RequestError::Conflicting {
                        container: self.container.to_string(),
                        first: first.to_string(),
                        second: name.to_string(),
                        what,
                    });
                }
                found = Some((name, v));
            }
        }
        Ok(found)
    }
}

fn is_gpu_name(name: &str) -> bool {
    name.starts_with("tessera.dev/")
        || name.starts_with("aliyun.com/gpu")
        || name.starts_with("nvidia.com/gpu")
}

fn container_demand(
    container: &Container,
    ctx: RequestContext,
) -> Result<Option<GpuDemand>, RequestError> {
    let values = Values::of(container)?;
    let tr = ctx.translation;
    let mut count_names = vec![keys::RESOURCE_GPU];
    let mut mem_names = vec![keys::RESOURCE_GPU_MEM];
    let mut core_names = vec![keys::RESOURCE_GPU_CORE];
    if tr.gpushare {
        count_names.push(keys::GPUSHARE_COUNT);
        mem_names.push(keys::GPUSHARE_MEM);
    }
    if tr.hami {
        count_names.push(keys::HAMI_GPU);
        mem_names.push(keys::HAMI_MEM);
        mem_names.push(keys::HAMI_MEM_PERCENTAGE);
        core_names.push(keys::HAMI_CORES);
    }
    let count = values.one_of(&count_names, "count")?;
    let mem = values.one_of(&mem_names, "memory")?;
    let core = values.one_of(&core_names, "compute")?;
    if count.is_none() && mem.is_none() && core.is_none() {
        return Ok(None);
    }
    build_demand(&container.name, count, mem, core, ctx).map(Some)
}

fn build_demand(
    container: &str,
    count: Option<(&'static str, u64)>,
    mem: Option<(&'static str, u64)>,
    core: Option<(&'static str, u64)>,
    ctx: RequestContext,
) -> Result<GpuDemand, RequestError> {
    let zero = |resource: &str| RequestError::Zero {
        container: container.to_string(),
        resource: resource.to_string(),
    };
    let out_of_range = |resource: &str, value: u64| RequestError::PercentOutOfRange {
        container: container.to_string(),
        resource: resource.to_string(),
        value,
    };
    let gpus = match count {
        Some((name, 0)) => return Err(zero(name)),
        Some((name, n)) => u32::try_from(n).map_err(|_| out_of_range(name, n))?,
        None => 1,
    };
    let core_milli = match core {
        Some((name, c)) if c == 0 || c > 100 => return Err(out_of_range(name, c)),
        Some((_, c)) => c as u32 * 10,
        // Only a count: whole GPUs. A memory share alone reserves no compute.
        None if mem.is_none() => MILLI_PER_GPU,
        None => 0,
    };
    let mut demand = GpuDemand {
        gpus,
        mem_mib: 0,
        mem_percent: 0,
        core_milli,
    };
    match mem {
        Some((name, 0)) => return Err(zero(name)),
        Some((keys::HAMI_MEM_PERCENTAGE, p)) if p > 100 => {
            return Err(out_of_range(keys::HAMI_MEM_PERCENTAGE, p));
        }
        Some((keys::HAMI_MEM_PERCENTAGE, p)) => demand.mem_percent = p as u32,
        Some((keys::GPUSHARE_MEM, gib)) => demand.mem_mib = gib.saturating_mul(1024),
        Some((_, mib)) => demand.mem_mib = mib,
        None => {}
    }
    if let (Some(largest), Some((name, _))) = (ctx.largest_gpu_mib, mem)
        && demand.mem_mib > largest
    {
        return Err(RequestError::MemoryExceedsLargestGpu {
            container: container.to_string(),
            resource: name.to_string(),
            requested_mib: demand.mem_mib,
            largest_mib: largest,
        });
    }
    Ok(demand)
}
