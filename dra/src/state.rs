//! The plugin's shared state: the GPUs found at start with their NVML health, the MPS daemon's
//! status, the prepared claims, and a watch channel that tells the publisher the slice changed.
//!
//! [`Shared::gpus`] applies the MPS status by the device plugin's rule
//! (`tessera_core::plugin::mps::apply_status`), so prepare and the slice agree with `Allocate`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use tessera_core::inventory::GpuInfo;
use tessera_core::plugin::mps::MpsStatus;
use tokio::sync::watch;

use crate::claims::Claims;
use crate::config::Config;
use crate::decide::prepared::Prepared;
use crate::decide::slice::{self, NodeGpus};
use crate::nvml::Discovered;

/// State shared by the gRPC services and the background tasks.
pub struct Shared {
    /// Validated configuration.
    pub config: Config,
    /// Where claims are read from.
    pub claims: Arc<dyn Claims>,
    discovered: Discovered,
    /// UUIDs NVML lost (tracked by the health task).
    lost: RwLock<BTreeSet<String>>,
    /// The MPS daemon's status while it is ready and fresh.
    mps: RwLock<Option<MpsStatus>>,
    /// Prepared claims; held across a whole prepare or unprepare, so two never interleave.
    pub prepared: tokio::sync::Mutex<Prepared>,
    changed: watch::Sender<u64>,
    registered: AtomicBool,
}

impl Shared {
    /// State for the `discovered` GPUs, with claims `prepared` before a restart.
    pub fn new(
        config: Config,
        discovered: Discovered,
        claims: Arc<dyn Claims>,
        prepared: Prepared,
    ) -> Self {
        Self {
            config,
            claims,
            discovered,
            lost: RwLock::new(BTreeSet::new()),
            mps: RwLock::new(None),
            prepared: tokio::sync::Mutex::new(prepared),
            changed: watch::channel(0).0,
            registered: AtomicBool::new(false),
        }
    }

    /// The GPUs with NVML health, isolation not applied.
    pub fn raw_gpus(&self) -> Vec<GpuInfo> {
        let lost = self.lost.read().map(|l| l.clone()).unwrap_or_default();
        let mut gpus = self.discovered.gpus.clone();
        for g in &mut gpus {
            g.healthy = !lost.contains(&g.uuid);
        }
        gpus
    }

    /// The GPUs as a claim may use them now: NVML health and the MPS status applied.
    pub fn gpus(&self) -> Vec<GpuInfo> {
        slice::effective(&self.raw_gpus(), self.mps().as_ref())
    }

    /// The live MPS status, if a daemon is ready (meaningful with `--mps-root`).
    pub fn mps(&self) -> Option<MpsStatus> {
        self.mps.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// What the slice is built from, for the Node with UID `node_uid`.
    pub fn node_gpus(&self, node_uid: &str) -> NodeGpus {
        NodeGpus {
            node: self.config.node_name.clone(),
            node_uid: node_uid.into(),
            gpus: self.raw_gpus(),
            driver_version: self.discovered.driver_version.clone(),
        }
    }

    /// Records the MPS status; tells the publisher when isolation changed.
    pub fn set_mps(&self, status: Option<MpsStatus>) {
        let before = self.gpus();
        if let Ok(mut m) = self.mps.write() {
            *m = status;
        }
        if self.gpus() != before {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// Records whether NVML answers for GPU `uuid`; tells the publisher when that changed.
    pub fn set_health(&self, uuid: &str, healthy: bool) {
        let changed = self.lost.write().is_ok_and(|mut lost| {
            if healthy {
                lost.remove(uuid)
            } else {
                lost.insert(uuid.to_string())
            }
        });
        if changed {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// Follows changes of what the slice says.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Whether the kubelet accepted our registration.
    pub fn is_registered(&self) -> bool {
        self.registered.load(Ordering::Relaxed)
    }

    /// Records the kubelet's verdict on our registration.
    pub fn set_registered(&self, registered: bool) {
        self.registered.store(registered, Ordering::Relaxed);
    }
}

/// Resolves once `shutdown` is true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}
