//! The DRA path as the extender scores it (issue 32, part 4): the GPUs that `tessera dra-plugin`
//! publishes as ResourceSlices of driver `gpu.tessera.dev`, the shares ResourceClaims hold of
//! them, and what a claim-bearing pod asks. Mapped onto the same ledger, fit and policies as the
//! device-plugin path, so Tessera chooses the node of a claim pod as it chooses any other's;
//! kube-scheduler's DRA allocator then picks the device inside that node (first fit).
//!
//! Pure: `facts` reads the Kubernetes objects into small records, `demand` turns a pod's claims
//! into a [`crate::request::PodRequest`], `state` keeps the ledger, `verdict` answers filter and
//! prioritize over it. The extender watches and
//! calls these; the driver's own names live here so both sides read the same ones.

mod demand;
mod facts;
mod state;
#[cfg(test)]
mod tests;
mod verdict;

pub use demand::{ClaimRef, DemandError, PodClaims, request_demand};
pub use facts::{ClaimFacts, DeviceFacts, HeldShare, RequestShape, SliceFacts, spec_requests};
pub use state::{DRA_SLOTS_PER_GPU, DraCluster};
pub use verdict::{filter_with, prioritize_with};

/// The driver name: a ResourceSlice's `spec.driver`, an allocation result's `driver`, and the
/// name of the DeviceClass whose requests Tessera scores.
pub const DRIVER: &str = "gpu.tessera.dev";
/// Capacity: GPU memory, bytes.
pub const CAPACITY_MEMORY: &str = "memory";
/// Capacity: GPU compute, percent (100 is the whole GPU).
pub const CAPACITY_COMPUTE: &str = "compute";
/// Device attribute: NVML product name (the model a pod may constrain).
pub const ATTR_PRODUCT_NAME: &str = "productName";
/// Device attribute: NVML index on the node.
pub const ATTR_INDEX: &str = "index";
/// Device attribute: whether the live MPS server is the multi-user one (`-M`).
pub const ATTR_MPS_MULTI_USER: &str = "mpsMultiUser";
/// Taint of a GPU whose shares MPS cannot enforce now: whole GPUs only, as on the device-plugin
/// path.
pub const TAINT_MPS_NOT_READY: &str = "gpu.tessera.dev/mps-not-ready";
/// Taint of a GPU NVML no longer answers for.
pub const TAINT_UNHEALTHY: &str = "gpu.tessera.dev/unhealthy";
/// Memory request granularity and minimum, bytes (256 MiB): the allocator rounds a request up
/// to it, so the ledger does too.
pub const MEMORY_STEP_BYTES: u64 = 256 << 20;
