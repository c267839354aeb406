//! The extender's shared state: the cluster picture from tessera-core behind one lock, the
//! pods filtered and awaiting bind, readiness and the bind writer. Watchers (and tests) change
//! the cluster through `update`; verbs read it through `read`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use prometheus_client::registry::Registry;

use crate::binder::Binder;
use crate::dra_state::DraState;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::pending::Pending;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use tessera_core::decide::Memo;
use tessera_core::ledger::SharingPolicy;

use tessera_core::annotations::Writer;
pub use tessera_core::cluster::Cluster;
use tessera_core::cluster::Judge;
use tessera_core::request::{self, PodRequest, RequestContext, Translation};
use tessera_core::score::Policy;

/// Settings of the extender's decisions.
#[derive(Debug, Clone, Copy, PartialEq)]
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
    /// The verbs answer only clients that presented a verified certificate (`--client-ca`).
    pub client_certificates: bool,
}

/// The settings of `tessera extender` with no flags (kept equal by a test in `options`).
impl Default for Config {
    fn default() -> Self {
        Config {
            policy: Policy::Fragmentation,
            slots_per_gpu: 10,
            translation: Translation::default(),
            reservation_timeout: Duration::from_secs(120),
            heartbeat_max_age: Some(Duration::from_secs(300)),
            sharing: SharingPolicy::IsolatedOnly,
            client_certificates: false,
        }
    }
}

/// Most filtered-but-unbound pods remembered; past it the oldest are forgotten (the pod's next
/// scheduling attempt filters it again).
pub const MAX_PENDING_PODS: usize = 10_000;

/// Most bytes the remembered requests may take in all; past it the oldest are forgotten too.
pub const MAX_PENDING_BYTES: usize = 32 << 20;

/// Most bytes one pod's remembered request may take (a pod of hundreds of GPU containers with
/// long names); a larger one is remembered as the reason its bind is refused.
pub const MAX_PENDING_POD_BYTES: usize = 64 << 10;

/// What bind needs of a filtered pod: its effective request, or why it has none. Only these
/// facts are kept, never the pod (a 4 MB pod would otherwise stay 4 MB until its bind).
pub type PendingRequest = Result<PodRequest, String>;

/// Shared extender state.
pub struct ExtenderState {
    cluster: RwLock<Cluster>,
    config: Config,
    ready: AtomicBool,
    started: Instant,
    binder: Arc<dyn Binder>,
    leadership: Arc<Leadership>,
    metrics: Metrics,
    memo: Mutex<Memo>,
    /// Requests of pods filtered and not yet bound, by UID: bind names only the pod.
    pending: Mutex<Pending<(String, PendingRequest)>>,
    /// The DRA path: slices, claims and templates of `gpu.tessera.dev`.
    dra: DraState,
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
            leadership: Arc::new(Leadership::single("tessera-extender")),
            metrics: Metrics::new(),
            memo: Mutex::default(),
            pending: Mutex::new(Pending::new(MAX_PENDING_PODS, MAX_PENDING_BYTES)),
            dra: DraState::new(config.sharing),
        }
    }

    /// Leads or stands by as `leadership` says (default: alone, always leading).
    pub fn with_leadership(mut self, leadership: Arc<Leadership>) -> Self {
        self.leadership = leadership;
        self
    }

    /// Registers more metrics at the root of the registry (the binary's build info).
    pub fn with_root_metrics(mut self, register: impl FnOnce(&mut Registry)) -> Self {
        self.metrics.register_root(register);
        self
    }

    /// This replica's standing among the extender replicas.
    pub fn leadership(&self) -> &Leadership {
        &self.leadership
    }

    /// How this replica judges assignments now (see `tessera_core::cluster::Judge`); `leading`
    /// must be this replica's current writer.
    pub fn judge<'a>(&self, leading: Option<&'a Writer>) -> Judge<'a> {
        Judge {
            leading,
            now_s: crate::clock::unix_secs(),
            timeout_s: i64::try_from(self.config.reservation_timeout.as_secs()).unwrap_or(i64::MAX),
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

    /// The DRA path's state (claim-bearing pods are placed against it).
    pub fn dra(&self) -> &DraState {
        &self.dra
    }

    /// The settings.
    pub fn config(&self) -> Config {
        self.config
    }

    /// Whether the verbs need a verified client certificate.
    pub fn requires_client_certificate(&self) -> bool {
        self.config.client_certificates
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

    /// Remembers what bind needs of a pod seen by filter.
    pub fn remember(&self, pod: &Pod) {
        // A pod without a UID cannot be bound safely (the Binding's UID precondition is what
        // ties the bind to the pod filtered), so it is not remembered.
        let Some(uid) = pod.metadata.uid.as_deref().filter(|u| !u.is_empty()) else {
            return;
        };
        let key = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or_default()
        );
        let ctx = RequestContext {
            translation: self.config.translation,
            largest_gpu_mib: None,
        };
        let request = request::pod_request(pod, ctx).map_err(|e| e.to_string());
        self.keep(uid, &key, request);
    }

    /// Remembers `request` for the pod `key` (`namespace/name`) with `uid` (again, after a bind
    /// that failed).
    pub fn keep(&self, uid: &str, key: &str, request: PendingRequest) {
        let mut size = uid.len() + key.len() + request_bytes(&request);
        let request = if size > MAX_PENDING_POD_BYTES {
            let why = format!(
                "the pod's request takes {size} bytes to remember, over the limit of {MAX_PENDING_POD_BYTES}"
            );
            size = uid.len() + key.len() + why.len();
            Err(why)
        } else {
            request
        };
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.insert(uid, (key.to_string(), request), size);
    }

    /// The pod (`namespace/name`) and request with `uid` seen by filter, forgetting them.
    pub fn take_pending(&self, uid: &str) -> Option<(String, PendingRequest)> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.take(uid)
    }

    /// Pods remembered for their bind, and the bytes their requests take.
    pub fn pending_size(&self) -> (usize, usize) {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.size()
    }

    /// Marks the caches synced (readiness).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// True once the caches are synced, the DRA path's included.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && self.dra.is_listed()
    }
}

/// Bytes a remembered request holds, its strings included (an estimate within a few words).
fn request_bytes(request: &PendingRequest) -> usize {
    let base = std::mem::size_of::<PendingRequest>() + 64;
    match request {
        Err(why) => base + why.len(),
        Ok(r) => {
            let containers: usize = r
                .containers
                .iter()
                .chain(r.init.iter().map(|i| &i.container))
                .map(|c| std::mem::size_of_val(c) + c.container.len())
                .sum();
            let models: usize = r.models.iter().map(|m| 24 + m.len()).sum();
            let group = r.group.as_ref().map_or(0, |g| g.key.len());
            base + containers + models + group
        }
    }
}
