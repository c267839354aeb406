//! Per-container GPU accounting: what each container holding a share uses of it.
//!
//! NVML reports GPU processes by PID with their memory and, where the GPU samples it, their SM
//! utilisation; [`super::cgroup`] turns a PID into a pod UID and container ID; the pods on the
//! node give namespace, name and container name (from `status.containerStatuses[].containerID`)
//! and the limit (from `tessera.dev/gpu-assignment`). [`join`] puts the three together. Reading
//! NVML, `/proc` and the apiserver is the device plugin's business.

use std::collections::BTreeMap;

use crate::annotations::Assignment;
use crate::plugin::cgroup::CgroupOwner;

/// Bytes in a MiB (assignment limits are in MiB).
const MIB: u64 = 1024 * 1024;

/// One process with a compute context on a GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuProcess {
    /// Host PID.
    pub pid: u32,
    /// GPU memory it holds, bytes; `None` where NVML cannot say.
    pub used_bytes: Option<u64>,
}

/// The processes of one GPU, as NVML reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuProcesses {
    /// GPU UUID.
    pub uuid: String,
    /// Processes with a compute context (MPS clients included).
    pub processes: Vec<GpuProcess>,
    /// SM utilisation per PID over NVML's last sample window, percent; `None` where the GPU
    /// does not sample it. A PID without a sample was idle.
    pub sm_percent: Option<BTreeMap<u32, u32>>,
}

/// A pod on the node, as accounting needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodContainers {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// `(container name, container ID without its runtime prefix)` of every container (init
    /// containers included) the kubelet has started.
    pub containers: Vec<(String, String)>,
    /// `tessera.dev/gpu-assignment`, when present and readable.
    pub assignment: Option<Assignment>,
}

/// What one container uses of its share on one GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerUsage {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
    /// GPU UUID.
    pub gpu: String,
    /// GPU memory its processes hold, bytes.
    pub used_bytes: u64,
    /// Its share's memory, bytes.
    pub limit_bytes: u64,
    /// SM utilisation of its processes, 0 to 1; `None` where the GPU does not sample it.
    pub sm_ratio: Option<f64>,
}

impl ContainerUsage {
    /// True when its processes hold more memory than its share (possible without MPS limits,
    /// or when the limit was not applied).
    pub fn over_limit(&self) -> bool {
        self.used_bytes > self.limit_bytes
    }
}

/// Every started container with a share on one of `gpus`, with what its processes use there.
/// `owners` maps the PIDs NVML reported to their cgroup owners; a PID missing from it (gone,
/// or outside any pod) counts for no container. Containers without a process show zero use.
pub fn join(
    gpus: &[GpuProcesses],
    owners: &BTreeMap<u32, CgroupOwner>,
    pods: &[PodContainers],
) -> Vec<ContainerUsage> {
    let mut out = Vec::new();
    for pod in pods {
        let Some(assignment) = &pod.assignment else {
            continue;
        };
        for assigned in &assignment.containers {
            let Some((_, id)) = pod
                .containers
                .iter()
                .find(|(n, _)| *n == assigned.container)
            else {
                continue;
            };
            let owner = CgroupOwner {
                pod_uid: pod.uid.clone(),
                container_id: id.clone(),
            };
            for share in &assigned.gpus {
                let Some(gpu) = gpus.iter().find(|g| g.uuid == share.uuid) else {
                    continue;
                };
                let (used_bytes, sm_ratio) = usage_of(gpu, owners, &owner);
                out.push(ContainerUsage {
                    namespace: pod.namespace.clone(),
                    pod: pod.name.clone(),
                    container: assigned.container.clone(),
                    gpu: share.uuid.clone(),
                    used_bytes,
                    limit_bytes: share.mem_mib.saturating_mul(MIB),
                    sm_ratio,
                });
            }
        }
    }
    out
}

/// Memory and SM ratio of `owner`'s processes on `gpu`.
fn usage_of(
    gpu: &GpuProcesses,
    owners: &BTreeMap<u32, CgroupOwner>,
    owner: &CgroupOwner,
) -> (u64, Option<f64>) {
    let pids: Vec<&GpuProcess> = gpu
        .processes
        .iter()
        .filter(|p| owners.get(&p.pid) == Some(owner))
        .collect();
    let used = pids
        .iter()
        .filter_map(|p| p.used_bytes)
        .fold(0u64, u64::saturating_add);
    let sm = gpu.sm_percent.as_ref().map(|samples| {
        let percent: u32 = pids
            .iter()
            .filter_map(|p| samples.get(&p.pid))
            .fold(0u32, |a, b| a.saturating_add(*b));
        // Samples of several processes can add past 100 within one window.
        f64::from(percent.min(100)) / 100.0
    });
    (used, sm)
}

#[cfg(test)]
mod tests;
