//! The DRA plugin's errors. A claim that cannot be prepared is never a failed RPC: its error
//! text goes in that claim's `error` field (the kubelet retries it, the others stand), so the
//! only mapping here is to that text.

use thiserror::Error;

use crate::decide::prepared::CheckpointError;
use crate::decide::share::ClaimRefused;

/// NVML could not be used.
#[derive(Debug, Clone, Error)]
pub enum NvmlFailure {
    /// The library could not be loaded or initialised (no driver, wrong `--nvml-lib`).
    #[error(
        "NVML not available from {lib:?} ({reason}); is the NVIDIA driver installed and \
         --nvml-lib/TESSERA_NVML_LIB right? This node will publish no GPU for DRA"
    )]
    Load {
        /// The library path or name tried.
        lib: String,
        /// What NVML or the loader said.
        reason: String,
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

/// Why one claim could not be prepared or unprepared.
#[derive(Debug, Error)]
pub enum ClaimError {
    /// The ResourceClaim could not be read from the apiserver.
    #[error("reading ResourceClaim {claim}: {reason}")]
    Read {
        /// `namespace/name`.
        claim: String,
        /// What the apiserver or client said.
        reason: String,
    },
    /// The apiserver's claim is another object than the kubelet asked for (deleted and
    /// recreated under the same name).
    #[error("ResourceClaim {claim} has UID {found}, the kubelet asked for {wanted}")]
    Uid {
        /// `namespace/name`.
        claim: String,
        /// The kubelet's UID.
        wanted: String,
        /// The apiserver's.
        found: String,
    },
    /// The claim's allocation cannot be served here.
    #[error(transparent)]
    Refused(#[from] ClaimRefused),
    /// Writing or removing its CDI spec, or the checkpoint, failed.
    #[error("{what} {path}: {source}")]
    File {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// The plugin could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The checkpoint exists but cannot be read: refusing to start keeps the plugin from
    /// forgetting claims it prepared.
    #[error("{path}: {source}")]
    Checkpoint {
        /// The checkpoint file.
        path: String,
        /// Cause.
        #[source]
        source: CheckpointError,
    },
    /// A socket or directory could not be set up.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}
