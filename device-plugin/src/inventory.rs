//! The inventory task: writes the node's `gpu-inventory` and heartbeat when core's publisher says
//! so (on change, bounded rate, plus the heartbeat).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_core::annotations::encode_inventory;
use tessera_core::inventory::NodeInventory;
use tessera_core::plugin::publish::{Decision, Publisher};
use tokio::sync::watch;

use crate::pods::NodeAnnotations;
use crate::state::Shared;

/// The encoded inventory of `shared`'s GPUs (empty when there are none).
pub fn encoded(shared: Option<&Shared>) -> String {
    encode_inventory(&NodeInventory {
        gpus: shared.map(Shared::gpus).unwrap_or_default(),
    })
}

/// Runs until `shutdown` turns true. `shared` is `None` on a node without NVML or GPUs: the
/// inventory is then empty and only the heartbeat keeps it fresh.
pub async fn run(
    shared: Option<Arc<Shared>>,
    node: Arc<dyn NodeAnnotations>,
    heartbeat: Duration,
    min_interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let start = Instant::now();
    let now_ms = || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mut publisher = Publisher::new(ms(heartbeat), ms(min_interval));
    let mut slots = shared.as_ref().map(|s| s.subscribe());
    loop {
        let text = encoded(shared.as_deref());
        match publisher.decide(&text, now_ms()) {
            Decision::Write => {
                let stamp = jiff::Timestamp::now().to_string();
                match node.write_inventory(&text, &stamp).await {
                    Ok(()) => publisher.written(&text, now_ms()),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not write the node's gpu-inventory");
                        publisher.failed(now_ms());
                    }
                }
            }
            Decision::WaitUntil(at) => {
                let changed = async {
                    match slots.as_mut() {
                        Some(rx) => {
                            let _ = rx.changed().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = tokio::time::sleep_until((start + Duration::from_millis(at)).into()) => {}
                    () = changed => {}
                    () = crate::state::stopped(&mut shutdown) => return,
                }
            }
        }
    }
}
