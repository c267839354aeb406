//! The health task: XID events from NVML go through core's tracker; a change flips the GPU's
//! slots in every ListAndWatch stream, and a quiet period brings them back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_core::plugin::health::{self, Change, Tracker};
use tokio::sync::{mpsc, watch};

use crate::metrics::XidLabel;
use crate::nvml::XidEvent;
use crate::state::Shared;

/// Runs until `shutdown` turns true. `events` are NVML's XID events; `failed_checks` names GPUs
/// whose periodic NVML query failed (fallen off the bus, lost), which count like a critical XID
/// without one. Either channel may close (no XID support): the other keeps working.
pub async fn run(
    shared: Arc<Shared>,
    mut events: mpsc::Receiver<XidEvent>,
    mut failed_checks: mpsc::Receiver<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let start = Instant::now();
    let now_ms = || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let recover_ms = u64::try_from(shared.config.recover_after.as_millis()).unwrap_or(u64::MAX);
    let mut tracker = Tracker::new(recover_ms);
    let (mut events_open, mut checks_open) = (true, true);
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
            event = events.recv(), if events_open => {
                let Some(event) = event else { events_open = false; continue };
                let critical = health::is_critical(event.xid);
                let label = XidLabel {
                    node: shared.config.node_name.clone(),
                    gpu: event.uuid.clone(),
                    critical: critical.to_string(),
                };
                shared.metrics.xid_events.get_or_create(&label).inc();
                match tracker.on_xid(&event.uuid, event.xid, now_ms()) {
                    Some(Change::Unhealthy { uuid, xid }) => {
                        tracing::warn!(gpu = %uuid, xid = ?xid, "critical XID: GPU unhealthy");
                        shared.set_health(&uuid, false);
                    }
                    _ => tracing::info!(gpu = %event.uuid, xid = ?event.xid, critical, "XID event"),
                }
            }
            uuid = failed_checks.recv(), if checks_open => {
                let Some(uuid) = uuid else { checks_open = false; continue };
                if tracker.on_xid(&uuid, None, now_ms()).is_some() {
                    tracing::warn!(gpu = %uuid, "NVML no longer answers for this GPU: unhealthy");
                    shared.set_health(&uuid, false);
                }
            }
            () = recovery => {
                for change in tracker.tick(now_ms()) {
                    if let Change::Recovered { uuid } = change {
                        tracing::info!(gpu = %uuid, "healthy for the recovery period: GPU offered again");
                        shared.set_health(&uuid, true);
                    }
                }
            }
            () = crate::state::stopped(&mut shutdown) => return,
        }
    }
}
