//! Every name the DRA driver publishes or answers with: the driver, its device attributes and
//! capacities, taint keys, the CDI kind and the kubelet registration strings.
//!
//! Those the extender reads too (the driver, capacities, the attributes and taints it scores
//! by) are `tessera_core::dra`'s, re-exported here, so both sides read one spelling; the rest
//! only this driver and its tests use (issue 32).

pub use tessera_core::dra::{
    ATTR_INDEX, ATTR_MPS_MULTI_USER, ATTR_PRODUCT_NAME, CAPACITY_COMPUTE, CAPACITY_MEMORY, DRIVER,
    TAINT_MPS_NOT_READY, TAINT_UNHEALTHY,
};

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
/// Device attribute: the NVIDIA driver version (a string: `580.95.05` is not semver).
pub const ATTR_DRIVER_VERSION: &str = "driverVersion";
/// Device attribute: whether MPS isolation is live on the GPU right now.
pub const ATTR_MPS_ISOLATION: &str = "mpsIsolation";
/// The taint effect used: no new allocation lands there; running ones stay.
pub const EFFECT_NO_SCHEDULE: &str = "NoSchedule";

/// The field manager of the plugin's server-side applies.
pub const FIELD_MANAGER: &str = "tessera-dra-plugin";
