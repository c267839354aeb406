//! The MPS status task: reads `<mps-root>/status.json`, written by `tessera mps-daemon`, every
//! `--mps-poll-ms`, and hands the status to [`Shared::set_mps`] while it is fresh. A missing,
//! unreadable or stale file means no ready daemon: the GPUs it would hold lose their isolation
//! in the inventory and their slots go Unhealthy, so no new container starts unlimited.

use std::path::Path;
use std::sync::Arc;

use tessera_core::plugin::mps::{MpsStatus, STATUS_FILE};
use tokio::sync::watch;

use crate::state::Shared;

/// Runs until `shutdown` turns true; does nothing when MPS isolation is off.
pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let Some(root) = shared.config.mps_root.clone() else {
        return;
    };
    let file = root.join(STATUS_FILE);
    let mut tick = tokio::time::interval(shared.config.mps_poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut why_not: Option<String> = Some(String::new());
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = crate::state::stopped(&mut shutdown) => return,
        }
        let now = jiff::Timestamp::now().as_second();
        let read = read_status(&file, now, shared.config.mps_status_max_age_secs).await;
        let ready = read.as_ref().ok().cloned();
        shared.metrics.mps_ready.set(i64::from(ready.is_some()));
        shared.set_mps(ready);
        match read {
            Ok(status) if why_not.is_some() => {
                why_not = None;
                tracing::info!(gpus = ?status.gpus, multi_user = status.multi_user, "MPS daemon ready: shares on its GPUs are isolated");
            }
            Err(reason) if why_not.as_deref() != Some(reason.as_str()) => {
                tracing::warn!(%reason, "MPS daemon not ready: its GPUs are offered Unhealthy until it is");
                why_not = Some(reason);
            }
            _ => {}
        }
    }
}

/// The fresh status in `file`, or why there is none.
async fn read_status(file: &Path, now: i64, max_age_secs: i64) -> Result<MpsStatus, String> {
    let text = tokio::fs::read_to_string(file).await;
    MpsStatus::read_fresh(file, text, now, max_age_secs)
}
