//! A node's physical GPUs as the device plugin discovers them (DESIGN.md, node `gpu-inventory`).
//!
//! Plain data: the device plugin fills it from NVML, the codec in `annotations` writes and reads
//! it, and the ledger builds its per-GPU accounting from it.

use serde::{Deserialize, Serialize};

/// One physical GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuInfo {
    /// NVML index on the node.
    pub index: u32,
    /// NVML UUID (`GPU-…`), the identity used everywhere else.
    pub uuid: String,
    /// Product name, as NVML reports it or as the trace names it.
    pub model: String,
    /// Total memory in MiB.
    pub memory_mib: u64,
    /// False once a critical XID was seen and the GPU has not yet recovered.
    pub healthy: bool,
    /// MIG mode enabled.
    #[serde(default)]
    pub mig: bool,
    /// MPS usable for compute and memory limits.
    #[serde(default)]
    pub mps: bool,
}

/// All GPUs of a node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeInventory {
    /// GPUs in index order.
    pub gpus: Vec<GpuInfo>,
}

impl NodeInventory {
    /// MiB of the node's largest GPU, if it has any.
    pub fn largest_gpu_mib(&self) -> Option<u64> {
        self.gpus.iter().map(|g| g.memory_mib).max()
    }
}
