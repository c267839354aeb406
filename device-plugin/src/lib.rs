//! tessera-device-plugin: the kubelet device plugin for fractional GPUs (DESIGN.md, issue 5).
//!
//! - [`api`]: the device plugin v1beta1 and PodResources v1 bindings, generated from `proto/`.
//! - [`nvml`]: GPU discovery, usage and XID events through nvml-wrapper, behind [`nvml::Gpus`].
//! - [`service`]: the `DevicePlugin` gRPC service; [`kubelet`]: serving, registration,
//!   re-registration after a kubelet restart, socket removal on shutdown.
//! - [`health`], [`inventory`], [`podresources`]: the background tasks (XID health and recovery,
//!   the node's `gpu-inventory` annotation, PodResources reconciliation).
//! - [`pods`]: the pods on this node behind [`pods::Pods`], with the kube-backed implementation.
//! - [`accounting`]: per-container GPU memory and SM use against each share's limit.
//! - [`coexist`]: refusing the node while another device plugin advertises its GPUs.
//!
//! Every decision is made by `tessera_core::plugin`; this crate does the I/O around it.
//!
//! **No NVML or no GPU.** When NVML cannot be loaded or reports no GPU, [`Plugin::run`] logs one
//! message saying so (naming the library tried), does not register with the kubelet — so the
//! node offers no `tessera.dev/gpu` and no pod is admitted with one — and keeps publishing an empty
//! `gpu-inventory` with a fresh heartbeat, so the extender sees a node with no shareable GPU rather
//! than a silent one. It then idles until shutdown; restart it after installing the driver.

pub mod accounting;
pub mod api;
pub mod coexist;
pub mod config;
pub mod error;
pub mod health;
pub mod inventory;
pub mod kubelet;
pub mod metrics;
pub mod mps;
pub mod nvml;
pub mod podresources;
pub mod pods;
pub mod service;
pub mod state;

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::error::NvmlFailure;
use crate::metrics::Metrics;
use crate::nvml::Gpus;
use crate::pods::{NodeAnnotations, Pods};
use crate::state::Shared;

/// The device plugin, ready to run.
pub struct Plugin {
    config: Config,
    gpus: Arc<dyn Gpus>,
    node: Arc<dyn NodeAnnotations>,
    shared: Result<Arc<Shared>, NvmlFailure>,
}

impl Plugin {
    /// Discovers the GPUs. A discovery failure is kept, not returned: [`Plugin::run`] then runs
    /// in the no-GPU mode described in the crate docs. [`Plugin::unavailable`] tells why.
    pub fn new(
        config: Config,
        gpus: Arc<dyn Gpus>,
        pods: Arc<dyn Pods>,
        node: Arc<dyn NodeAnnotations>,
        metrics: Metrics,
    ) -> Self {
        let shared = gpus
            .discover()
            .map(|list| Arc::new(Shared::new(config.clone(), list, pods, metrics)));
        Self {
            config,
            gpus,
            node,
            shared,
        }
    }

    /// Why the plugin has no GPU to offer, if it has none.
    pub fn unavailable(&self) -> Option<&NvmlFailure> {
        self.shared.as_ref().err()
    }

    /// The shared state, when GPUs were found.
    pub fn shared(&self) -> Option<&Arc<Shared>> {
        self.shared.as_ref().ok()
    }

    /// Serves and registers, keeps health, inventory and reconciliation going, until `shutdown`
    /// turns true; then removes our socket.
    pub async fn run(&self, shutdown: watch::Receiver<bool>) -> Result<(), kubelet::ServeError> {
        let mut tasks = tokio::task::JoinSet::new();
        let (hb, min) = (
            self.config.heartbeat_every,
            self.config.inventory_min_interval,
        );
        let shared = match &self.shared {
            Ok(shared) => Arc::clone(shared),
            Err(why) => {
                tracing::error!("{why}");
                inventory::run(None, Arc::clone(&self.node), hb, min, shutdown).await;
                return Ok(());
            }
        };
        // Before registering: a node whose GPUs another plugin hands out never offers a share.
        coexist::check(&shared, self.node.as_ref()).await;
        tasks.spawn(coexist::run(
            Arc::clone(&shared),
            Arc::clone(&self.node),
            shutdown.clone(),
        ));
        let (xid_tx, xid_rx) = mpsc::channel(64);
        if let Err(e) = self.gpus.watch_xids(xid_tx) {
            // Without events no GPU can be marked unhealthy; serving is still better than nothing.
            tracing::error!(error = %e, "XID events unavailable; GPU health will not change");
        }
        let (check_tx, check_rx) = mpsc::channel(16);
        tasks.spawn(health::run(
            Arc::clone(&shared),
            xid_rx,
            check_rx,
            shutdown.clone(),
        ));
        tasks.spawn(mps::run(Arc::clone(&shared), shutdown.clone()));
        tasks.spawn(inventory::run(
            Some(Arc::clone(&shared)),
            Arc::clone(&self.node),
            hb,
            min,
            shutdown.clone(),
        ));
        if let Some(socket) = self.config.pod_resources_socket.clone() {
            tasks.spawn(podresources::run(
                Arc::clone(&shared),
                socket,
                shutdown.clone(),
            ));
        }
        tasks.spawn(check(
            Arc::clone(&self.gpus),
            Arc::clone(&shared),
            check_tx,
            shutdown.clone(),
        ));
        let result = kubelet::run(shared, shutdown).await;
        tasks.abort_all();
        result
    }
}

/// Every `health_check_every`: reads memory and utilisation for the metrics (per GPU and, with
/// a proc root, per share container), and reports each GPU NVML no longer answers for as a
/// failed health check.
async fn check(
    gpus: Arc<dyn Gpus>,
    shared: Arc<Shared>,
    failed: mpsc::Sender<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(shared.config.health_check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let gpus = Arc::clone(&gpus);
                let proc_root = shared.config.proc_root.clone();
                let Ok((usage, processes)) = tokio::task::spawn_blocking(move || {
                    let processes = proc_root.map(|root| {
                        let list = gpus.processes();
                        let owners = accounting::owners(&root, &list);
                        (list, owners)
                    });
                    (gpus.usage(), processes)
                })
                .await
                else {
                    continue;
                };
                shared.metrics.set_usage(&shared.config.node_name, &usage);
                if let Some((list, owners)) = processes {
                    accounting::record(&shared, &list, &owners);
                }
                for gpu in shared.gpus() {
                    if !usage.iter().any(|u| u.uuid == gpu.uuid) {
                        let _ = failed.send(gpu.uuid).await;
                    }
                }
            }
            () = crate::state::stopped(&mut shutdown) => return,
        }
    }
}
