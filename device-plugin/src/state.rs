//! The plugin's shared state: the node's GPUs with their health, the advertised slot list (a watch
//! channel every ListAndWatch stream follows) and what `Allocate` has served.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tessera_core::annotations::GpuShare;
use tessera_core::inventory::GpuInfo;
use tessera_core::plugin::slots::{self, Slot};
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::{GpuLabel, Metrics};
use crate::pods::Pods;

/// What one `Allocate` handed out for a set of slots.
#[derive(Debug, Clone)]
pub struct Served {
    /// The matched pod's identity (its UID; see `PodView::identity`).
    pub pod: String,
    /// Container name matched.
    pub container: String,
    /// Shares put into the container's env.
    pub shares: Vec<GpuShare>,
    /// When (for pruning records PodResources no longer shows).
    pub at: Instant,
}

/// State shared by the gRPC service, the health, inventory and reconciliation tasks.
pub struct Shared {
    /// Validated configuration.
    pub config: Config,
    /// Pods on this node and annotation writes.
    pub pods: Arc<dyn Pods>,
    /// Metrics.
    pub metrics: Metrics,
    gpus: RwLock<Vec<GpuInfo>>,
    slots: watch::Sender<Vec<Slot>>,
    served: Mutex<BTreeMap<String, Served>>,
    /// Serialises Allocate so two calls never match the same container.
    pub allocate_lock: tokio::sync::Mutex<()>,
}

impl Shared {
    /// State for `gpus`, all healthy.
    pub fn new(config: Config, gpus: Vec<GpuInfo>, pods: Arc<dyn Pods>, metrics: Metrics) -> Self {
        let (slots, _) = watch::channel(slots::advertise(&gpus, config.slots_per_gpu));
        for g in &gpus {
            metrics
                .healthy
                .get_or_create(&GpuLabel {
                    gpu: g.uuid.clone(),
                })
                .set(1);
        }
        Self {
            config,
            pods,
            metrics,
            gpus: RwLock::new(gpus),
            slots,
            served: Mutex::new(BTreeMap::new()),
            allocate_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The GPUs with their current health.
    pub fn gpus(&self) -> Vec<GpuInfo> {
        self.gpus.read().map(|g| g.clone()).unwrap_or_default()
    }

    /// Sets one GPU's health and republishes the slot list if it changed.
    pub fn set_health(&self, uuid: &str, healthy: bool) {
        let Ok(mut gpus) = self.gpus.write() else {
            return;
        };
        let Some(gpu) = gpus.iter_mut().find(|g| g.uuid == uuid) else {
            return;
        };
        if gpu.healthy == healthy {
            return;
        }
        gpu.healthy = healthy;
        self.metrics
            .healthy
            .get_or_create(&GpuLabel {
                gpu: uuid.to_string(),
            })
            .set(i64::from(healthy));
        self.slots
            .send_replace(slots::advertise(&gpus, self.config.slots_per_gpu));
    }

    /// A receiver of the advertised slot list, starting with the current one.
    pub fn subscribe(&self) -> watch::Receiver<Vec<Slot>> {
        self.slots.subscribe()
    }

    /// Records what `Allocate` served for `key` (see `reconcile::record_key`).
    pub fn record(&self, key: String, served: Served) {
        if let Ok(mut s) = self.served.lock() {
            s.insert(key, served);
        }
    }

    /// `(pod, container)` pairs already served.
    pub fn served_containers(&self) -> Vec<(String, String)> {
        self.served
            .lock()
            .map(|s| {
                s.values()
                    .map(|v| (v.pod.clone(), v.container.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Slot-set key to shares served, for reconciliation.
    pub fn served_shares(&self) -> BTreeMap<String, Vec<GpuShare>> {
        self.served
            .lock()
            .map(|s| {
                s.iter()
                    .map(|(k, v)| (k.clone(), v.shares.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Drops records not in `keep` that are older than `min_age`.
    pub fn prune(&self, keep: &[String], min_age: std::time::Duration) {
        if let Ok(mut s) = self.served.lock() {
            s.retain(|k, v| keep.contains(k) || v.at.elapsed() < min_age);
        }
    }
}

/// Resolves once `shutdown` is true (or its sender is gone). Drops the watch guard before
/// returning, so it can sit in a `select!` of a `Send` future.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}
