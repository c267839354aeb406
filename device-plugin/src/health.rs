//! The health task: XID events from NVML go through core's tracker; a change flips the GPU's
//! slots in every ListAndWatch stream, and a quiet period brings them back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_core::plugin::health::{self, Change, Tracker};
use tokio::sync::{mpsc, watch};

use crate::metrics::XidLabel;
use crate::nvml::XidEvent;
use crate::state::Shared;

/// Runs until `events` closes or `shutdown` turns true.
pub async fn run(
    shared: Arc<Shared>,
    mut events: mpsc::Receiver<XidEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let start = Instant::now();
    let now_ms = || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let recover_ms = u64::try_from(shared.config.recover_after.as_millis()).unwrap_or(u64::MAX);
    let mut tracker = Tracker::new(recover_ms);
    loop {
        let due = tracker
            .next_due_ms()
            .map(|ms| start + Duration::from_millis(ms));
        let recovery = async {
            match due {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return };
                let critical = health::is_critical(event.xid);
                shared.metrics.xid_events.get_or_create(&XidLabel { gpu: event.uuid.clone(), critical: critical.to_string() }).inc();
                match tracker.on_xid(&event.uuid, event.xid, now_ms()) {
                    Some(Change::Unhealthy { uuid, xid }) => {
                        tracing::warn!(gpu = %uuid, xid = ?xid, "critical XID: GPU unhealthy");
                        shared.set_health(&uuid, false);
                    }
                    _ => tracing::info!(gpu = %event.uuid, xid = ?event.xid, critical, "XID event"),
                }
            }
            () = recovery => {
                for change in tracker.tick(now_ms()) {
                    if let Change::Recovered { uuid } = change {
                        tracing::info!(gpu = %uuid, "no critical XID for the recovery period: GPU healthy again");
                        shared.set_health(&uuid, true);
                    }
                }
            }
            () = crate::state::stopped(&mut shutdown) => return,
        }
    }
}
