//! The extender's shared state: the cluster picture from tessera-core behind one lock, the
//! pods filtered and awaiting bind, readiness and the bind writer. Watchers (and tests) change
//! the cluster through `update`; verbs read it through `read`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use crate::binder::Binder;
use crate::metrics::Metrics;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use tessera_core::decide::Memo;
use tessera_core::ledger::SharingPolicy;

pub use tessera_core::cluster::Cluster;
use tessera_core::request::Translation;
use tessera_core::score::Policy;

/// Settings of the extender's decisions.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Scoring policy.
    pub policy: Policy,
    /// Device-plugin slots per GPU.
    pub slots_per_gpu: u32,
    /// Foreign request names to read (pods normally arrive already translated by the webhook).
    pub translation: Translation,
    /// How long a bound pod may take to appear on its node before its shares are released.
    pub reservation_timeout: Duration,
    /// Oldest acceptable device-plugin inventory heartbeat (`None`: not checked).
    pub heartbeat_max_age: Option<Duration>,
    /// Where fractional shares may go: GPUs with live isolation only, or any (soft sharing).
    pub sharing: SharingPolicy,
}

/// Most filtered-but-unbound pods remembered; past it the oldest memory is dropped (the pod's
/// next scheduling attempt filters it again).
pub const MAX_PENDING_PODS: usize = 10_000;

/// Shared extender state.
pub struct ExtenderState {
    cluster: RwLock<Cluster>,
    config: Config,
    ready: AtomicBool,
    started: Instant,
    binder: Arc<dyn Binder>,
    metrics: Metrics,
    memo: Mutex<Memo>,
    /// Pods filtered and not yet bound, by UID: bind names only the pod, not its request.
    pending: Mutex<HashMap<String, Pod>>,
}

impl std::fmt::Debug for ExtenderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtenderState")
            .field("config", &self.config)
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl ExtenderState {
    /// An empty, not-yet-ready state that writes binds through `binder`.
    pub fn new(config: Config, binder: Arc<dyn Binder>) -> Self {
        let cluster = Cluster::new(config.slots_per_gpu).with_sharing(config.sharing);
        ExtenderState {
            cluster: RwLock::new(cluster),
            config,
            ready: AtomicBool::new(false),
            started: Instant::now(),
            binder,
            metrics: Metrics::new(),
            memo: Mutex::default(),
            pending: Mutex::default(),
        }
    }

    /// The bind writer.
    pub fn binder(&self) -> &dyn Binder {
        self.binder.as_ref()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Per-node answers remembered between requests (held for the length of one verb).
    pub fn memo(&self) -> MutexGuard<'_, Memo> {
        self.memo.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The settings.
    pub fn config(&self) -> Config {
        self.config
    }

    /// Changes the cluster; the fragmentation cache is brought up to date afterwards.
    pub fn update<T>(&self, change: impl FnOnce(&mut Cluster) -> T) -> T {
        let mut cluster = self
            .cluster
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let out = change(&mut cluster);
        cluster.refresh_frag();
        out
    }

    /// Read access for a decision.
    pub fn read(&self) -> RwLockReadGuard<'_, Cluster> {
        self.cluster
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Milliseconds since the state was made: the clock of reservation deadlines.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Releases reservations whose pods never appeared in time; returns those pods.
    pub fn expire_reservations(&self, now_ms: u64) -> Vec<String> {
        self.update(|c| c.reservations.expire(&mut c.ledger, now_ms))
    }

    /// Remembers a pod seen by filter, for its bind.
    pub fn remember(&self, pod: &Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() >= MAX_PENDING_PODS && !pending.contains_key(&uid) {
            pending.clear();
        }
        pending.insert(uid, pod.clone());
    }

    /// The pod with `uid` seen by filter, forgetting it.
    pub fn take_pending(&self, uid: &str) -> Option<Pod> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid)
    }

    /// Marks the caches synced (readiness).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// True once the caches are synced.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}
