//! Every name the DRA driver publishes or answers with: the driver, its device attributes and
//! capacities, taint keys, the CDI kind and the kubelet registration strings.
//!
//! They live here, not in `tessera_kernel::keys`, because only this driver and its tests use
//! them and the pure crates must not grow for it (issue 32).

/// The driver name: the ResourceSlice's `spec.driver`, the plugin's registration name, the
/// DeviceClass's name and the CDI vendor.
pub const DRIVER: &str = "gpu.tessera.dev";
/// The CDI kind of every device this driver writes (`vendor/class`).
pub const CDI_KIND: &str = "gpu.tessera.dev/claim";
/// The CDI spec version written (the oldest that has what the specs use).
pub const CDI_VERSION: &str = "0.6.0";

/// `PluginInfo.type` of a DRA kubelet plugin.
pub const PLUGIN_TYPE: &str = "DRAPlugin";
/// The DRA gRPC service we serve, as the kubelet names services in `supported_versions`
/// (`<proto package's last element>.<service>`; a v1.36 kubelet knows `v1.DRAPlugin` and
/// `v1beta1.DRAPlugin`).
pub const DRA_SERVICE_V1: &str = "v1.DRAPlugin";

/// Device attribute: NVML UUID (`GPU-…`).
pub const ATTR_UUID: &str = "uuid";
/// Device attribute: NVML product name.
pub const ATTR_PRODUCT_NAME: &str = "productName";
/// Device attribute: NVML index on the node.
pub const ATTR_INDEX: &str = "index";
/// Device attribute: the NVIDIA driver version (a string: `580.95.05` is not semver).
pub const ATTR_DRIVER_VERSION: &str = "driverVersion";
/// Device attribute: whether MPS isolation is live on the GPU right now.
pub const ATTR_MPS_ISOLATION: &str = "mpsIsolation";
/// Device attribute: whether the live MPS server is the multi-user one (`-M`).
pub const ATTR_MPS_MULTI_USER: &str = "mpsMultiUser";

/// Capacity: GPU memory, bytes.
pub const CAPACITY_MEMORY: &str = "memory";
/// Capacity: GPU compute, percent (100 is the whole GPU).
pub const CAPACITY_COMPUTE: &str = "compute";

/// Taint of a GPU whose shares MPS cannot enforce now (no ready daemon, or no MPS at all).
pub const TAINT_MPS_NOT_READY: &str = "gpu.tessera.dev/mps-not-ready";
/// Taint of a GPU NVML no longer answers for.
pub const TAINT_UNHEALTHY: &str = "gpu.tessera.dev/unhealthy";
/// The taint effect used: no new allocation lands there; running ones stay.
pub const EFFECT_NO_SCHEDULE: &str = "NoSchedule";

/// The field manager of the plugin's server-side applies.
pub const FIELD_MANAGER: &str = "tessera-dra-plugin";
