//! tessera-mps: `tessera mps-daemon`, which makes GPU shares hold (DESIGN.md, "Isolation: MPS
//! run by Tessera").
//!
//! It runs as its own DaemonSet, so upgrading or restarting the device plugin never touches the
//! MPS server (restarting it ends every GPU process it serves). On start it puts every GPU MPS
//! can hold in EXCLUSIVE_PROCESS mode ([`takeover`]), so no process can use the GPU around MPS
//! while the server runs, then supervises `nvidia-cuda-mps-control -f` ([`supervise`]) with its
//! pipe, log and shm directories under `--mps-root`. While the daemon answers `get_server_list`
//! it publishes `<root>/status.json` (the device plugin's signal that isolation is live) and
//! `/readyz`; when it dies it is restarted with backoff and the status is withdrawn at once.
//! On SIGTERM: status withdrawn, `quit`, modes restored.
//!
//! - [`config`]: flags; [`nvml`]: compute modes through nvml-wrapper; [`control`]: the control
//!   program; [`metrics`]: Prometheus metrics.

pub mod config;
pub mod control;
pub mod metrics;
pub mod nvml;
pub mod supervise;
pub mod takeover;

use std::path::Path;

use tessera_core::plugin::mps::{LOG_DIR, PIPE_DIR, SHM_DIR};
use thiserror::Error;
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::nvml::ComputeModes;

/// Why the daemon could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// A directory under the root could not be made.
    #[error("cannot prepare {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// NVML failed while taking the GPUs.
    #[error(transparent)]
    Nvml(#[from] nvml::NvmlError),
}

/// Takes the GPUs, supervises the control daemon until `shutdown`, then gives the GPUs back.
/// `ready` turns true while isolation is live.
pub async fn run(
    config: Config,
    modes: &dyn ComputeModes,
    metrics: Metrics,
    ready: watch::Sender<bool>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), StartError> {
    prepare(&config.root)?;
    let taken = takeover::take(modes, &config.root)?;
    metrics
        .gpus
        .set(i64::try_from(taken.gpus.len()).unwrap_or(0));
    if taken.gpus.is_empty() {
        tracing::error!(
            "no GPU can be held behind MPS (none of Volta or newer with MIG off, or none whose mode could be set); shares on this node will not be isolated"
        );
        let mut shutdown = shutdown;
        let _ = shutdown.wait_for(|s| *s).await;
    } else {
        let uuids = taken.gpus.iter().map(|g| g.uuid.clone()).collect();
        supervise::run(&config, uuids, &metrics, &ready, shutdown).await;
    }
    taken.restore(modes);
    Ok(())
}

/// Makes `pipe/`, `log/` and `shm/`. The pipe and shm directories are shared with clients of
/// any user (multi-user MPS), so they are world-writable with the sticky bit, like /tmp.
fn prepare(root: &Path) -> Result<(), StartError> {
    use std::os::unix::fs::PermissionsExt;
    for (dir, mode) in [(PIPE_DIR, 0o1777), (SHM_DIR, 0o1777), (LOG_DIR, 0o755)] {
        let path = root.join(dir);
        let err = |source| StartError::Dir {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&path).map_err(err)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    }
    Ok(())
}
