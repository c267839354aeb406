//! The plugin's shared state: the node's GPUs with their health, the MPS daemon's status, the
//! advertised slot list (a watch channel every ListAndWatch stream follows) and what `Allocate`
//! has served.
//!
//! GPUs are kept as NVML and XID health see them; [`Shared::gpus`] gives them with the MPS
//! status applied (`tessera_core::plugin::mps::apply_status`): isolation per GPU, and
//! MPS-capable GPUs unhealthy while no daemon is ready; and every GPU unhealthy while another
//! device plugin advertises them (`tessera_core::plugin::coexist`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tessera_core::annotations::GpuShare;
use tessera_core::inventory::GpuInfo;
use tessera_core::plugin::coexist::{self, Conflict};
use tessera_core::plugin::mps::{self, MpsStatus};
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
    /// The MPS daemon's status while it is ready and fresh (meaningful with `--mps-root`).
    mps: RwLock<Option<MpsStatus>>,
    /// Another device plugin advertising this node's GPUs, while one does.
    conflict: RwLock<Option<Conflict>>,
    slots: watch::Sender<Vec<Slot>>,
    served: Mutex<BTreeMap<String, Served>>,
    /// Serialises Allocate so two calls never match the same container.
    pub allocate_lock: tokio::sync::Mutex<()>,
    /// Whether the kubelet has accepted our registration for the socket we serve now.
    registered: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// State for `gpus`, all healthy.
    /// With `--mps-root`, MPS-capable GPUs start unhealthy until the daemon's status is read.
    pub fn new(config: Config, gpus: Vec<GpuInfo>, pods: Arc<dyn Pods>, metrics: Metrics) -> Self {
        let effective = effective(&config, &gpus, None, None);
        let (slots, _) = watch::channel(slots::advertise(&effective, config.slots_per_gpu));
        for g in &effective {
            metrics
                .healthy
                .get_or_create(&GpuLabel::new(&config.node_name, &g.uuid))
                .set(i64::from(g.healthy));
        }
        Self {
            config,
            pods,
            metrics,
            gpus: RwLock::new(gpus),
            mps: RwLock::new(None),
            conflict: RwLock::new(None),
            slots,
            served: Mutex::new(BTreeMap::new()),
            allocate_lock: tokio::sync::Mutex::new(()),
            registered: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the kubelet knows our current socket (readiness: until then, and after a kubelet
    /// restart removed the socket, the node offers no share).
    pub fn is_registered(&self) -> bool {
        self.registered.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What `/readyz` says: `Ok` while the kubelet knows our socket and no other device plugin
    /// advertises the node's GPUs, else `Err` with the reason.
    pub fn readiness(&self) -> Result<&'static str, String> {
        if let Some(c) = self.conflict() {
            return Err(c.to_string());
        }
        if self.is_registered() {
            Ok("registered with the kubelet")
        } else {
            Err("not registered with the kubelet".into())
        }
    }

    /// Records whether the kubelet knows our current socket.
    pub fn set_registered(&self, registered: bool) {
        self.registered
            .store(registered, std::sync::atomic::Ordering::Relaxed);
        self.metrics.registered.set(i64::from(registered));
    }

    /// The GPUs as offered now: XID health, and the MPS daemon's status applied.
    pub fn gpus(&self) -> Vec<GpuInfo> {
        let gpus = self.gpus.read().map(|g| g.clone()).unwrap_or_default();
        let mps = self.mps.read().map(|m| m.clone()).unwrap_or_default();
        let conflict = self.conflict();
        effective(&self.config, &gpus, mps.as_ref(), conflict.as_ref())
    }

    /// Another device plugin advertising this node's GPUs, if one does.
    pub fn conflict(&self) -> Option<Conflict> {
        self.conflict.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// Records whether another device plugin advertises this node's GPUs; republishes the slot
    /// list (and so the inventory) when that changed. Returns whether it changed.
    pub fn set_conflict(&self, conflict: Option<Conflict>) -> bool {
        {
            let Ok(mut c) = self.conflict.write() else {
                return false;
            };
            if *c == conflict {
                return false;
            }
            *c = conflict;
        }
        self.republish();
        true
    }

    /// Sets one GPU's XID health and republishes the slot list if it changed.
    pub fn set_health(&self, uuid: &str, healthy: bool) {
        {
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
        }
        self.republish();
    }

    /// Records the MPS daemon's status (`None`: not ready, or stale); republishes the slot
    /// list (and so the inventory) when it changed. Returns whether it changed.
    pub fn set_mps(&self, status: Option<MpsStatus>) -> bool {
        {
            let Ok(mut mps) = self.mps.write() else {
                return false;
            };
            // A renewed heartbeat alone changes nothing offered.
            let same = match (&*mps, &status) {
                (Some(a), Some(b)) => a.gpus == b.gpus && a.multi_user == b.multi_user,
                (None, None) => true,
                _ => false,
            };
            *mps = status;
            if same {
                return false;
            }
        }
        self.republish();
        true
    }

    /// True when MPS isolation is on and a ready daemon's status is known.
    pub fn mps_ready(&self) -> bool {
        self.mps.read().is_ok_and(|m| m.is_some())
    }

    fn republish(&self) {
        let gpus = self.gpus();
        for g in &gpus {
            self.metrics
                .healthy
                .get_or_create(&GpuLabel::new(&self.config.node_name, &g.uuid))
                .set(i64::from(g.healthy));
        }
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

/// `gpus` with the MPS status applied when MPS isolation is on, and a conflict applied.
fn effective(
    config: &Config,
    gpus: &[GpuInfo],
    mps: Option<&MpsStatus>,
    conflict: Option<&Conflict>,
) -> Vec<GpuInfo> {
    let mut gpus = gpus.to_vec();
    if config.mps_root.is_some() {
        mps::apply_status(&mut gpus, mps);
    }
    coexist::apply(&mut gpus, conflict);
    gpus
}

/// Resolves once `shutdown` is true (or its sender is gone). Drops the watch guard before
/// returning, so it can sit in a `select!` of a `Send` future.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}
