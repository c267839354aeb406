//! The health task: every `--health-check-seconds` NVML is asked about each GPU; one it no
//! longer answers for is unhealthy (core's tracker, as a critical event without an XID) and is
//! tainted in the slice until it has answered for `--recover-after-seconds`.
//!
//! XID events are the device plugin's business on nodes it serves; this driver does not
//! watch them yet (issue 32 leaves it for later).

use std::sync::Arc;
use std::time::Instant;

use tessera_core::plugin::health::{Change, Tracker};
use tokio::sync::watch;

use crate::nvml::Gpus;
use crate::state::{Shared, stopped};

/// Runs until `shutdown` turns true.
pub async fn run(gpus: Arc<dyn Gpus>, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let start = Instant::now();
    let now_ms = || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let recover_ms = u64::try_from(shared.config.recover_after.as_millis()).unwrap_or(u64::MAX);
    let mut tracker = Tracker::new(recover_ms);
    let mut tick = tokio::time::interval(shared.config.health_check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped(&mut shutdown) => return,
        }
        let query = Arc::clone(&gpus);
        let Ok(answering) = tokio::task::spawn_blocking(move || query.answering()).await else {
            continue;
        };
        for gpu in shared.raw_gpus() {
            if !answering.contains(&gpu.uuid) && tracker.on_xid(&gpu.uuid, None, now_ms()).is_some()
            {
                tracing::warn!(gpu = %gpu.uuid, "NVML no longer answers for this GPU: tainted unhealthy");
                shared.set_health(&gpu.uuid, false);
            }
        }
        for change in tracker.tick(now_ms()) {
            if let Change::Recovered { uuid } = change {
                tracing::info!(gpu = %uuid, "answering for the recovery period: taint removed");
                shared.set_health(&uuid, true);
            }
        }
    }
}
