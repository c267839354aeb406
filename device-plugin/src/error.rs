//! The device plugin's errors and their one mapping to gRPC status codes (STYLE.md 3):
//! InvalidArgument for slots we did not hand out, FailedPrecondition when no allocating pod
//! matches, Unavailable when NVML or the apiserver is down.

use tessera_core::plugin::mps::ShareRefused;
use tessera_core::plugin::{allocate::NoMatch, slots::SlotError};
use thiserror::Error;

/// NVML could not be used. `Load` and `NoGpu` are the "no NVML / no GPU" cases: the plugin logs
/// the message once, advertises nothing and publishes an empty inventory (see the crate docs).
#[derive(Debug, Clone, Error)]
pub enum NvmlFailure {
    /// The library could not be loaded or initialised (no driver, wrong `--nvml-lib`).
    #[error(
        "NVML not available from {lib:?} ({reason}); is the NVIDIA driver installed and \
         --nvml-lib/TESSERA_NVML_LIB right? This node will offer no tessera.dev/gpu"
    )]
    Load {
        /// The library path or name tried.
        lib: String,
        /// What NVML or the loader said.
        reason: String,
    },
    /// NVML works but reports no GPU.
    #[error("NVML from {lib:?} reports no GPU; this node will offer no tessera.dev/gpu")]
    NoGpu {
        /// The library path or name used.
        lib: String,
    },
    /// A query failed after NVML loaded.
    #[error("NVML from {lib:?}: {reason}")]
    Query {
        /// The library path or name used.
        lib: String,
        /// What NVML said.
        reason: String,
    },
}

/// Why a device plugin RPC failed.
#[derive(Debug, Error)]
pub enum PluginError {
    /// The kubelet named a device ID we did not advertise.
    #[error(transparent)]
    Slot(#[from] SlotError),
    /// No pod in `bind-phase: allocating` matches.
    #[error(transparent)]
    NoMatch(#[from] NoMatch),
    /// The pod cache is not ready or the apiserver refused a write.
    #[error("apiserver unavailable: {0}")]
    Apiserver(String),
    /// A kubelet API (PodResources) did not answer.
    #[error("kubelet unavailable: {0}")]
    Kubelet(String),
    /// NVML is not usable.
    #[error(transparent)]
    Nvml(#[from] NvmlFailure),
    /// The matched container's GPUs cannot be handed out (not on this node, unhealthy, or their
    /// MPS daemon is not ready).
    #[error("{pod}/{container}: {reason}")]
    Refused {
        /// `namespace/name` of the matched pod.
        pod: String,
        /// Container name.
        container: String,
        /// Why.
        reason: ShareRefused,
    },
}

impl PluginError {
    /// Bounded label for the Allocate error counter.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Slot(_) => "unknown_slot",
            Self::NoMatch(_) => "no_matching_pod",
            Self::Apiserver(_) => "apiserver",
            Self::Kubelet(_) => "kubelet",
            Self::Nvml(_) => "nvml",
            Self::Refused {
                reason: ShareRefused::MpsDown { .. },
                ..
            } => "mps_not_ready",
            Self::Refused { .. } => "refused_gpu",
        }
    }
}

impl From<PluginError> for tonic::Status {
    fn from(e: PluginError) -> Self {
        let message = e.to_string();
        match e {
            PluginError::Slot(_) => tonic::Status::invalid_argument(message),
            PluginError::NoMatch(_) => tonic::Status::failed_precondition(message),
            PluginError::Refused {
                reason: ShareRefused::MpsDown { .. } | ShareRefused::Unhealthy { .. },
                ..
            } => tonic::Status::unavailable(message),
            PluginError::Refused { .. } => tonic::Status::failed_precondition(message),
            PluginError::Apiserver(_) | PluginError::Kubelet(_) | PluginError::Nvml(_) => {
                tonic::Status::unavailable(message)
            }
        }
    }
}
