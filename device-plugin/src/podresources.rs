//! Reconciliation against the kubelet's PodResources API: which pod really holds which of our
//! slots. Where that disagrees with a pod's `gpu-assignment`, core's `reconcile::corrections`
//! says what to write; this module lists, writes, logs and counts.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use tessera_core::keys;
use tessera_core::plugin::allocate::{self, BindPhase};
use tessera_core::plugin::reconcile::{self, Held};
use tokio::sync::watch;

use crate::api::podresources::ListPodResourcesRequest;
use crate::api::podresources::pod_resources_lister_client::PodResourcesListerClient;
use crate::error::PluginError;
use crate::kubelet::unix_channel;
use crate::metrics::GpuLabel;
use crate::state::Shared;

/// Every container holding `tessera.dev/gpu` slots, from PodResources `List`.
pub async fn list_held(socket: &Path) -> Result<Vec<Held>, PluginError> {
    let unavailable = |e: &dyn std::fmt::Display| {
        PluginError::Kubelet(format!("PodResources at {}: {e}", socket.display()))
    };
    let channel = unix_channel(socket).await.map_err(|e| unavailable(&e))?;
    let list = PodResourcesListerClient::new(channel)
        .list(ListPodResourcesRequest {})
        .await
        .map_err(|e| unavailable(&e))?
        .into_inner();
    let mut held = Vec::new();
    for pod in list.pod_resources {
        for c in pod.containers {
            for d in c
                .devices
                .into_iter()
                .filter(|d| d.resource_name == keys::RESOURCE_GPU)
            {
                held.push(Held {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    container: c.name.clone(),
                    device_ids: d.device_ids,
                });
            }
        }
    }
    Ok(held)
}

/// One reconciliation pass; returns the number of corrected pods.
pub async fn reconcile_once(shared: &Shared, socket: &Path) -> Result<usize, PluginError> {
    let held = list_held(socket).await?;
    let pods = shared.pods.on_node()?;
    let fixes = reconcile::corrections(
        &shared.config.node_name,
        &held,
        &pods,
        &shared.served_shares(),
    );
    let mut corrected = 0;
    for fix in &fixes {
        match shared
            .pods
            .set_assignment(&fix.namespace, &fix.name, &fix.assignment)
            .await
        {
            Ok(()) => {
                corrected += 1;
                shared.metrics.corrections.inc();
                tracing::info!(pod = %format!("{}/{}", fix.namespace, fix.name), changes = ?fix.changes, "gpu-assignment corrected from PodResources");
            }
            Err(e) => {
                tracing::warn!(pod = %format!("{}/{}", fix.namespace, fix.name), error = %e, "could not correct gpu-assignment")
            }
        }
    }
    // Served pods whose bind-phase write failed earlier.
    let served = shared.served_containers();
    for p in pods.iter().filter(|p| p.phase == BindPhase::Allocating) {
        if p.assignment
            .as_ref()
            .is_some_and(|a| allocate::fully_served(a, &p.identity(), &served))
        {
            let _ = shared.pods.set_allocated(&p.namespace, &p.name).await;
        }
    }
    let keep: Vec<String> = held
        .iter()
        .map(|h| reconcile::record_key(&h.device_ids))
        .collect();
    shared.prune(&keep, shared.config.reconcile_every * 2);
    set_share_gauges(shared, &pods);
    Ok(corrected)
}

fn set_share_gauges(shared: &Shared, pods: &[allocate::PodView]) {
    let mut shares: BTreeMap<String, i64> =
        shared.gpus().into_iter().map(|g| (g.uuid, 0)).collect();
    for a in pods
        .iter()
        .filter(|p| p.phase != BindPhase::Other)
        .filter_map(|p| p.assignment.as_ref())
    {
        for s in a.shares() {
            *shares.entry(s.uuid.clone()).or_default() += 1;
        }
    }
    for (gpu, n) in shares {
        shared
            .metrics
            .shares_assigned
            .get_or_create(&GpuLabel::new(&shared.config.node_name, &gpu))
            .set(n);
    }
}

/// Reconciles every `reconcile_every` until `shutdown` turns true.
pub async fn run(
    shared: Arc<Shared>,
    socket: std::path::PathBuf,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(shared.config.reconcile_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = reconcile_once(&shared, &socket).await {
                    tracing::warn!(error = %e, "PodResources reconciliation failed");
                }
            }
            () = crate::state::stopped(&mut shutdown) => return,
        }
    }
}
