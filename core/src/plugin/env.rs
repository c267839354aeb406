//! The environment `Allocate` gives a container for its GPU shares (DESIGN.md, the contract):
//! `NVIDIA_VISIBLE_DEVICES` with the assigned UUIDs, the MPS limits, and `TESSERA_*` for
//! in-container enforcement.
//!
//! MPS limits are per device as the container sees them: index 0 is the first UUID in
//! `NVIDIA_VISIBLE_DEVICES`. A memory share of 0 MiB means "no memory limit" and sets none.

use std::collections::BTreeMap;

use crate::annotations::GpuShare;

/// GPUs the NVIDIA container runtime exposes.
pub const NVIDIA_VISIBLE_DEVICES: &str = "NVIDIA_VISIBLE_DEVICES";
/// MPS: pinned device memory per device, `0=4096M,1=4096M`.
pub const CUDA_MPS_PINNED_DEVICE_MEM_LIMIT: &str = "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT";
/// MPS: percent of the SMs a client may use.
pub const CUDA_MPS_ACTIVE_THREAD_PERCENTAGE: &str = "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE";
/// Tessera: the assigned UUIDs, same order as `NVIDIA_VISIBLE_DEVICES`.
pub const TESSERA_GPU_UUIDS: &str = "TESSERA_GPU_UUIDS";
/// Tessera: MiB per GPU, comma-separated in UUID order.
pub const TESSERA_GPU_MEM_LIMIT_MIB: &str = "TESSERA_GPU_MEM_LIMIT_MIB";
/// Tessera: thousandths of compute per GPU, comma-separated in UUID order.
pub const TESSERA_GPU_CORE_LIMIT_MILLI: &str = "TESSERA_GPU_CORE_LIMIT_MILLI";
/// Tessera: the pod the device plugin matched, `namespace/name/container`.
pub const TESSERA_ALLOCATED_FOR: &str = "TESSERA_ALLOCATED_FOR";

/// The env for a container holding `shares`, served for `ns/name/container`.
pub fn container_env(shares: &[GpuShare], allocated_for: &str) -> BTreeMap<String, String> {
    let join = |f: &dyn Fn(&GpuShare) -> String| shares.iter().map(f).collect::<Vec<_>>().join(",");
    let mut env = BTreeMap::new();
    let uuids = join(&|s| s.uuid.clone());
    env.insert(NVIDIA_VISIBLE_DEVICES.to_string(), uuids.clone());
    env.insert(TESSERA_GPU_UUIDS.to_string(), uuids);
    env.insert(
        TESSERA_GPU_MEM_LIMIT_MIB.to_string(),
        join(&|s| s.mem_mib.to_string()),
    );
    env.insert(
        TESSERA_GPU_CORE_LIMIT_MILLI.to_string(),
        join(&|s| s.core_milli.to_string()),
    );
    env.insert(TESSERA_ALLOCATED_FOR.to_string(), allocated_for.to_string());
    let mem: Vec<String> = shares
        .iter()
        .enumerate()
        .filter(|(_, s)| s.mem_mib > 0)
        .map(|(i, s)| format!("{i}={}M", s.mem_mib))
        .collect();
    if !mem.is_empty() {
        env.insert(CUDA_MPS_PINNED_DEVICE_MEM_LIMIT.to_string(), mem.join(","));
    }
    // One percentage for the client: the smallest share, so no GPU exceeds its own.
    if let Some(milli) = shares.iter().map(|s| s.core_milli).min().filter(|m| *m > 0) {
        let percent = milli.div_ceil(10).clamp(1, 100);
        env.insert(
            CUDA_MPS_ACTIVE_THREAD_PERCENTAGE.to_string(),
            percent.to_string(),
        );
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(uuid: &str, mem_mib: u64, core_milli: u32) -> GpuShare {
        GpuShare {
            uuid: uuid.into(),
            mem_mib,
            core_milli,
        }
    }

    #[test]
    fn env_carries_uuids_and_per_device_limits() {
        let env = container_env(
            &[share("GPU-a", 4096, 300), share("GPU-b", 4096, 300)],
            "ns/p/c",
        );
        assert_eq!(env[NVIDIA_VISIBLE_DEVICES], "GPU-a,GPU-b");
        assert_eq!(env[CUDA_MPS_PINNED_DEVICE_MEM_LIMIT], "0=4096M,1=4096M");
        assert_eq!(env[CUDA_MPS_ACTIVE_THREAD_PERCENTAGE], "30");
        assert_eq!(env[TESSERA_GPU_MEM_LIMIT_MIB], "4096,4096");
        assert_eq!(env[TESSERA_GPU_CORE_LIMIT_MILLI], "300,300");
        assert_eq!(env[TESSERA_ALLOCATED_FOR], "ns/p/c");
    }

    #[test]
    fn zero_memory_share_sets_no_mps_memory_limit() {
        let env = container_env(&[share("GPU-a", 0, 1000)], "ns/p/c");
        assert!(!env.contains_key(CUDA_MPS_PINNED_DEVICE_MEM_LIMIT));
        assert_eq!(env[CUDA_MPS_ACTIVE_THREAD_PERCENTAGE], "100");
    }
}
