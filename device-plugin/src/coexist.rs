//! The coexistence task: reads this node's status at start and every
//! `--coexistence-check-seconds`, and refuses the node while another device plugin advertises
//! its GPUs (the rule is `tessera_core::plugin::coexist`): every slot Unhealthy, the inventory's
//! GPUs unhealthy, `/readyz` false with the reason, `tessera_device_plugin_conflict` 1.
//!
//! A failed read keeps the last answer: an apiserver outage neither opens nor closes the node.

use std::sync::Arc;

use tessera_core::plugin::coexist::{self, NVIDIA_GPU};
use tokio::sync::watch;

use crate::metrics::ResourceLabel;
use crate::pods::NodeAnnotations;
use crate::state::Shared;

/// One check: reads the node's resources and records the conflict, if any.
pub async fn check(shared: &Shared, node: &dyn NodeAnnotations) {
    let (capacity, allocatable) = match node.resources().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read this node's resources to look for another GPU device plugin");
            return;
        }
    };
    let conflict = coexist::conflict(&capacity, &allocatable);
    let metric = |resource: &str, v: i64| {
        shared
            .metrics
            .conflict
            .get_or_create(&ResourceLabel {
                resource: resource.to_string(),
            })
            .set(v);
    };
    // The usual resource is always present, so dashboards and alerts see 0 as well as 1.
    if let Some(old) = shared.conflict() {
        metric(&old.resource, 0);
    }
    metric(NVIDIA_GPU, 0);
    if let Some(c) = &conflict {
        metric(&c.resource, 1);
    }
    if shared.set_conflict(conflict.clone()) {
        match conflict {
            Some(c) => tracing::error!(resource = %c.resource, quantity = %c.quantity, "{c}"),
            None => tracing::info!(
                "no other device plugin advertises this node's GPUs: offering shares"
            ),
        }
    }
}

/// Checks every `coexistence_check_every` until `shutdown` turns true (the first check is the
/// caller's, before the plugin registers).
pub async fn run(
    shared: Arc<Shared>,
    node: Arc<dyn NodeAnnotations>,
    mut shutdown: watch::Receiver<bool>,
) {
    let every = shared.config.coexistence_check_every;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => check(&shared, node.as_ref()).await,
            () = crate::state::stopped(&mut shutdown) => return,
        }
    }
}
