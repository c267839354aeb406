//! Every `tessera.dev/` name Tessera reads or writes, and the foreign names it translates.
//!
//! One module so that a key is spelled once: the webhook, the extender, the device plugin and the
//! simulator all refer to these constants (DESIGN.md, "The contract between the parts").

/// Extended resource: number of distinct physical GPUs (advertised as slots by the device plugin).
pub const RESOURCE_GPU: &str = "tessera.dev/gpu";
/// Extended resource: MiB of GPU memory on each requested GPU (accounted by the extender only).
pub const RESOURCE_GPU_MEM: &str = "tessera.dev/gpu-mem";
/// Extended resource: percent (1–100) of each GPU's compute; 100 means exclusive.
pub const RESOURCE_GPU_CORE: &str = "tessera.dev/gpu-core";

/// gpushare: GPU memory in GiB.
pub const GPUSHARE_MEM: &str = "aliyun.com/gpu-mem";
/// gpushare: number of GPUs.
pub const GPUSHARE_COUNT: &str = "aliyun.com/gpu-count";
/// HAMi: number of GPUs.
pub const HAMI_GPU: &str = "nvidia.com/gpu";
/// HAMi: GPU memory in MiB.
pub const HAMI_MEM: &str = "nvidia.com/gpumem";
/// HAMi: percent of compute.
pub const HAMI_CORES: &str = "nvidia.com/gpucores";
/// HAMi: percent of the GPU's memory.
pub const HAMI_MEM_PERCENTAGE: &str = "nvidia.com/gpumem-percentage";

/// Node annotation: JSON GPU inventory written by the device plugin.
pub const ANNOTATION_GPU_INVENTORY: &str = "tessera.dev/gpu-inventory";
/// Node annotation: RFC 3339 time of the device plugin's last inventory heartbeat.
pub const ANNOTATION_GPU_INVENTORY_HEARTBEAT: &str = "tessera.dev/gpu-inventory-heartbeat";
/// Pod annotation: the GPUs and shares the extender assigned to each container.
pub const ANNOTATION_GPU_ASSIGNMENT: &str = "tessera.dev/gpu-assignment";
/// Pod annotation: RFC 3339 time the extender bound the pod.
pub const ANNOTATION_BIND_TIME: &str = "tessera.dev/bind-time";
/// Pod annotation: the extender leader and Lease term that wrote the assignment (`holder@term`).
pub const ANNOTATION_ASSIGNED_BY: &str = "tessera.dev/assigned-by";
/// Pod annotation: `allocating` after bind, `allocated` once the device plugin served it.
pub const ANNOTATION_BIND_PHASE: &str = "tessera.dev/bind-phase";
/// Pod annotations only Tessera's extender and device plugin write: a pod created with one
/// would claim a GPU share nobody assigned (the webhook refuses it; the guard policy refuses any
/// other writer on update).
pub const BINDER_ANNOTATIONS: [&str; 4] = [
    ANNOTATION_GPU_ASSIGNMENT,
    ANNOTATION_BIND_PHASE,
    ANNOTATION_ASSIGNED_BY,
    ANNOTATION_BIND_TIME,
];
/// Value of [`ANNOTATION_BIND_PHASE`] between bind and the device plugin's Allocate.
pub const BIND_PHASE_ALLOCATING: &str = "allocating";
/// Value of [`ANNOTATION_BIND_PHASE`] once the device plugin has served the pod.
pub const BIND_PHASE_ALLOCATED: &str = "allocated";
/// Pod annotation: allowed GPU models, `|`-separated (empty or absent: any).
pub const ANNOTATION_GPU_MODELS: &str = "tessera.dev/gpu-models";

/// Pod annotation: opt in to profiles by name, comma-separated. As a pod label it names one
/// profile (`true` only routes the pod to the webhook; `false` opts out).
pub const ANNOTATION_INJECT: &str = "tessera.dev/inject";
/// Pod annotation: `name@hash` of the profiles already applied (idempotency marker).
pub const ANNOTATION_INJECTED: &str = "tessera.dev/injected";
/// Namespace label: `disabled` means never inject.
pub const LABEL_INJECTION: &str = "tessera.dev/injection";
/// Pod label: anti-affinity group for pods without an owning StatefulSet.
pub const LABEL_GROUP: &str = "tessera.dev/group";
/// Pod label: `"true"` makes the group a quorum group.
pub const LABEL_QUORUM: &str = "tessera.dev/quorum";

/// Well-known node label for the zone.
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// Label the StatefulSet controller puts on its pods (Kubernetes ≥ 1.28).
pub const LABEL_POD_INDEX: &str = "apps.kubernetes.io/pod-index";

/// Scheduler profile that sends its pods to the extender.
pub const SCHEDULER_NAME: &str = "tessera-scheduler";
/// Namespace and node label choosing the GPU path; on a pod, set by the webhook when it moved the
/// pod's GPU shares to ResourceClaims (the claim-template controller watches those pods).
pub const LABEL_GPU_PATH: &str = "tessera.dev/gpu-path";
/// The value of [`LABEL_GPU_PATH`] for Dynamic Resource Allocation.
pub const GPU_PATH_DRA: &str = "dra";

/// StatefulSet annotation: the ensemble's real membership, as the membership controller last
/// recorded it ([`crate::ensemble::Record`]).
pub const ANNOTATION_MEMBERSHIP: &str = "tessera.dev/membership";
/// Pod label: the member of an ensemble whose membership Tessera manages (value: the profile).
pub const LABEL_MEMBERSHIP: &str = "tessera.dev/membership";
