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
    /// MPS usable for compute and memory limits (Volta or newer, MIG off): a capability.
    #[serde(default)]
    pub mps: bool,
    /// Whether shares on this GPU are enforced right now (absent in older inventories: none).
    #[serde(default)]
    pub isolation: Isolation,
}

/// How a GPU's shares are enforced at this moment (DESIGN.md, "Isolation: MPS run by Tessera").
///
/// The device plugin says `mps` or `mpsMultiUser` only while Tessera's MPS daemon is ready and
/// holds the GPU in EXCLUSIVE_PROCESS mode; without a daemon the MPS limits are ignored, so a
/// share there would be accounting only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Isolation {
    /// Nothing enforces a share: only whole GPUs are safe (unless the operator opts into soft
    /// sharing).
    #[default]
    None,
    /// A live MPS daemon without the multi-user server: every MPS client on the node must run as
    /// one Linux user at a time, or later users wait for earlier ones to finish.
    Mps,
    /// A live MPS daemon with the multi-user server (`-M`): clients of different users at once.
    MpsMultiUser,
}

impl Isolation {
    /// True when an MPS daemon enforces shares on the GPU.
    pub fn is_live(self) -> bool {
        self != Isolation::None
    }
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
