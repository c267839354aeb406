//! MPS isolation as the device plugin sees it (DESIGN.md, "Isolation: MPS run by Tessera").
//!
//! `tessera mps-daemon` writes [`MpsStatus`] to `<mps-root>/status.json` while it supervises a
//! healthy `nvidia-cuda-mps-control`, renewing its heartbeat, and removes it when the daemon is
//! not ready. The device plugin reads it to decide, per GPU, whether isolation is live (the
//! inventory's `isolation`), whether the GPU's slots may be offered, and what a container on it
//! gets from `Allocate`: the pipe directory and the shared `/dev/shm`, so its CUDA client
//! reaches the MPS server and the limits in its env hold.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::annotations::GpuShare;
use crate::inventory::{GpuInfo, Isolation};

/// Default `--mps-root` of both the daemon and the device plugin.
pub const DEFAULT_ROOT: &str = "/run/tessera/mps";
/// Under the root: the status file.
pub const STATUS_FILE: &str = "status.json";
/// Under the root: `CUDA_MPS_PIPE_DIRECTORY` of the daemon and its clients.
pub const PIPE_DIR: &str = "pipe";
/// Under the root: `CUDA_MPS_LOG_DIRECTORY`.
pub const LOG_DIR: &str = "log";
/// Under the root: the daemon's and every client's `/dev/shm`.
pub const SHM_DIR: &str = "shm";
/// Env: where a CUDA client finds the MPS control daemon.
pub const CUDA_MPS_PIPE_DIRECTORY: &str = "CUDA_MPS_PIPE_DIRECTORY";
/// Where MPS clients and server share memory.
pub const DEV_SHM: &str = "/dev/shm";
/// The status file's version.
pub const STATUS_VERSION: &str = "v1";

/// What the daemon publishes while it is ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MpsStatus {
    /// [`STATUS_VERSION`].
    pub version: String,
    /// UUIDs of the GPUs the daemon holds in EXCLUSIVE_PROCESS mode behind its server.
    pub gpus: Vec<String>,
    /// The control daemon runs the multi-user server (`-M`).
    pub multi_user: bool,
    /// Seconds since the Unix epoch of the last successful health check.
    pub heartbeat: i64,
}

/// The status file could not be read.
#[derive(Debug, Error)]
pub enum StatusError {
    /// Not JSON of the expected shape.
    #[error("MPS status file: {0}")]
    Json(#[from] serde_json::Error),
    /// A version this build does not know.
    #[error("MPS status file: unsupported version {0:?} (this build reads {STATUS_VERSION:?})")]
    Version(String),
}

impl MpsStatus {
    /// Encodes for the status file.
    pub fn encode(&self) -> String {
        // Plain strings, bools and integers: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Decodes the status file.
    pub fn decode(text: &str) -> Result<Self, StatusError> {
        let status: MpsStatus = serde_json::from_str(text)?;
        if status.version != STATUS_VERSION {
            return Err(StatusError::Version(status.version));
        }
        Ok(status)
    }

    /// True when the heartbeat is at most `max_age_secs` old at `now` (Unix seconds). A daemon
    /// killed without a chance to remove the file leaves it behind; the age catches that.
    pub fn is_fresh(&self, now: i64, max_age_secs: i64) -> bool {
        now.saturating_sub(self.heartbeat) <= max_age_secs
    }

    /// The status read from `file` (`text`, or the error reading it), if it decodes and its
    /// heartbeat is fresh; else why not, naming the file. Both GPU plugins decide MPS readiness
    /// by it.
    pub fn read_fresh(
        file: &std::path::Path,
        text: std::io::Result<String>,
        now: i64,
        max_age_secs: i64,
    ) -> Result<MpsStatus, String> {
        let text = text.map_err(|e| format!("{}: {e}", file.display()))?;
        let status = Self::decode(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        if !status.is_fresh(now, max_age_secs) {
            return Err(format!(
                "{}: heartbeat {}s old (more than {max_age_secs}s: the daemon is gone)",
                file.display(),
                now.saturating_sub(status.heartbeat)
            ));
        }
        Ok(status)
    }
}

/// The isolation of each GPU given the live status (`None`: no ready daemon).
///
/// Fills `isolation` in place, and marks unhealthy every GPU that an MPS daemon should hold
/// (`mps`-capable) while none is ready: a client started then would run unlimited, so no new
/// container may start on it (its slots go Unhealthy in ListAndWatch).
pub fn apply_status(gpus: &mut [GpuInfo], live: Option<&MpsStatus>) {
    for gpu in gpus {
        gpu.isolation = match live {
            Some(s) if s.gpus.contains(&gpu.uuid) && s.multi_user => Isolation::MpsMultiUser,
            Some(s) if s.gpus.contains(&gpu.uuid) => Isolation::Mps,
            _ => Isolation::None,
        };
        if gpu.mps && live.is_none() {
            gpu.healthy = false;
        }
    }
}

/// A mount `Allocate` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// Path on the node.
    pub host_path: PathBuf,
    /// Path in the container.
    pub container_path: PathBuf,
    /// Mounted read-only.
    pub read_only: bool,
}

/// What a container on MPS-isolated GPUs gets beside its limit variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpsClient {
    /// Env to add (the pipe directory).
    pub env: Vec<(String, String)>,
    /// The pipe directory and the shared `/dev/shm`.
    pub mounts: Vec<MountSpec>,
}

/// Why `Allocate` refuses a matched container's GPUs.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ShareRefused {
    /// The assignment names a GPU this node does not have (a stale or forged assignment).
    #[error("the assignment names GPU {uuid}, which node {node} does not have")]
    UnknownGpu {
        /// This node.
        node: String,
        /// The GPU named.
        uuid: String,
    },
    /// The GPU is marked unhealthy (critical XID, or NVML lost it).
    #[error("GPU {uuid} on node {node} is unhealthy")]
    Unhealthy {
        /// This node.
        node: String,
        /// The GPU.
        uuid: String,
    },
    /// The GPU should be behind the MPS daemon, which is not ready: isolation is not live.
    #[error("the MPS daemon of node {node} is not ready, so GPU {uuid} cannot isolate a share")]
    MpsDown {
        /// This node.
        node: String,
        /// The GPU.
        uuid: String,
    },
    /// Some of the container's GPUs are behind MPS and some are not: one CUDA process cannot
    /// be an MPS client on some GPUs only.
    #[error("container assigned GPUs {with_mps:?} behind MPS and {without:?} not")]
    Mixed {
        /// GPUs behind MPS.
        with_mps: Vec<String>,
        /// GPUs not behind MPS.
        without: Vec<String>,
    },
}

/// Checks a matched container's `shares` against the node's `gpus` (isolation applied) and
/// says what it needs to reach MPS: `Some` when its GPUs are behind a ready daemon under
/// `root`, `None` when they are not behind MPS (soft sharing, or whole GPUs without MPS).
///
/// Whole GPUs on an MPS-managed GPU go through MPS too (at 100%): in EXCLUSIVE_PROCESS mode a
/// client that bypasses MPS fails while the MPS server holds the GPU.
pub fn client_for(
    node: &str,
    shares: &[GpuShare],
    gpus: &[GpuInfo],
    root: Option<&Path>,
) -> Result<Option<MpsClient>, ShareRefused> {
    let (mut with_mps, mut without) = (Vec::new(), Vec::new());
    for share in shares {
        let gpu = usable(node, &share.uuid, gpus, root.is_some())?;
        if gpu.isolation.is_live() {
            with_mps.push(share.uuid.clone());
        } else {
            without.push(share.uuid.clone());
        }
    }
    match (root, with_mps.is_empty(), without.is_empty()) {
        (Some(root), false, true) => Ok(Some(mps_client(root))),
        (_, false, false) => Err(ShareRefused::Mixed { with_mps, without }),
        _ => Ok(None),
    }
}

/// The node's GPU `uuid`, if it may take a container now.
fn usable<'g>(
    node: &str,
    uuid: &str,
    gpus: &'g [GpuInfo],
    mps_on: bool,
) -> Result<&'g GpuInfo, ShareRefused> {
    let (node, uuid) = (node.to_string(), uuid.to_string());
    match gpus.iter().find(|g| g.uuid == uuid) {
        None => Err(ShareRefused::UnknownGpu { node, uuid }),
        // Unhealthy only for want of a daemon: say so, it is back within seconds.
        Some(g) if !g.healthy && mps_on && g.mps && !g.isolation.is_live() => {
            Err(ShareRefused::MpsDown { node, uuid })
        }
        Some(g) if !g.healthy => Err(ShareRefused::Unhealthy { node, uuid }),
        Some(g) => Ok(g),
    }
}

fn mps_client(root: &Path) -> MpsClient {
    // The pipe directory keeps its node path inside the container, so the variable names one
    // path for the daemon, the plugin and the client alike.
    let pipe = root.join(PIPE_DIR);
    MpsClient {
        env: vec![(
            CUDA_MPS_PIPE_DIRECTORY.to_string(),
            pipe.display().to_string(),
        )],
        mounts: vec![
            MountSpec {
                host_path: pipe.clone(),
                container_path: pipe,
                read_only: false,
            },
            MountSpec {
                host_path: root.join(SHM_DIR),
                container_path: PathBuf::from(DEV_SHM),
                read_only: false,
            },
        ],
    }
}

#[cfg(test)]
mod tests;
