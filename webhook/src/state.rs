//! The webhook's shared state: the profiles being served (swapped whole when a new set loads),
//! readiness, the admission settings and the metric handles.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::runtime::reflector::{ObjectRef, Store};
use tessera_inject::Profile;
use tessera_kernel::ensemble::Record;
use tessera_kernel::keys;

use crate::config::AdmissionConfig;
use crate::metrics::Metrics;

/// StatefulSets read live, by (namespace, name), with when they were read.
type LiveReads = HashMap<(String, String), (Instant, Arc<StatefulSet>)>;

/// State shared by every request.
#[derive(Debug)]
pub struct WebhookState {
    admission: AdmissionConfig,
    profiles: RwLock<Arc<Vec<Profile>>>,
    ready: AtomicBool,
    metrics: Metrics,
    request_timeout: Duration,
    generation: tokio::sync::watch::Sender<u64>,
    statefulsets: OnceLock<Store<StatefulSet>>,
    /// StatefulSets read live on a cache miss, until the watch catches up.
    live: Mutex<LiveReads>,
    client: OnceLock<LiveClient>,
}

/// The apiserver client for live reads (kube's client is not `Debug`).
struct LiveClient(kube::Client);

impl std::fmt::Debug for LiveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveClient")
    }
}

/// Longest a live read of a StatefulSet may hold a review (the apiserver's own deadline for the
/// webhook is longer; a read past this denies as before).
pub const LIVE_READ: Duration = Duration::from_secs(2);
/// How long a live read stands in for the cache.
const LIVE_FOR: Duration = Duration::from_secs(30);
/// Most live reads kept: each is one small StatefulSet; past it the table is cleared.
const LIVE_MAX: usize = 1024;

impl WebhookState {
    /// New state with no profiles; not ready until [`WebhookState::set_profiles`] is called.
    pub fn new(admission: AdmissionConfig, metrics: Metrics, request_timeout: Duration) -> Self {
        WebhookState {
            admission,
            profiles: RwLock::new(Arc::new(Vec::new())),
            ready: AtomicBool::new(false),
            metrics,
            request_timeout,
            generation: tokio::sync::watch::Sender::new(0),
            statefulsets: OnceLock::new(),
            live: Mutex::new(HashMap::new()),
            client: OnceLock::new(),
        }
    }

    /// Serves `profiles` from now on (sorted by name); `invalid` counts those rejected.
    pub fn set_profiles(&self, mut profiles: Vec<Profile>, invalid: usize) {
        profiles.sort_by(|a, b| a.name.cmp(&b.name));
        self.metrics.profiles(profiles.len(), invalid);
        let next = Arc::new(profiles);
        match self.profiles.write() {
            Ok(mut guard) => *guard = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        self.ready.store(true, Ordering::Release);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Reads StatefulSets' replicas from `store` from now on (the peers controller's cache),
    /// and with `client` reads one live when the cache does not have it yet.
    pub fn set_statefulsets(&self, store: Store<StatefulSet>, client: kube::Client) {
        let _ = self.statefulsets.set(store);
        let _ = self.client.set(LiveClient(client));
    }

    /// True when StatefulSets are watched but `namespace/name` is not known (yet): created a
    /// moment ago, its first pod can arrive before the watch event.
    pub fn misses(&self, namespace: &str, name: &str) -> bool {
        self.statefulsets.get().is_some() && self.statefulset(namespace, name).is_none()
    }

    /// Reads StatefulSet `namespace/name` from the apiserver, within [`LIVE_READ`], and keeps
    /// it for the cache to stand in; true when it exists.
    pub async fn read_live(&self, namespace: &str, name: &str) -> bool {
        let Some(LiveClient(client)) = self.client.get() else {
            return false;
        };
        let api: kube::Api<StatefulSet> = kube::Api::namespaced(client.clone(), namespace);
        let Ok(Ok(Some(sts))) = tokio::time::timeout(LIVE_READ, api.get_opt(name)).await else {
            return false;
        };
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.len() >= LIVE_MAX {
            live.clear();
        }
        live.insert(
            (namespace.to_string(), name.to_string()),
            (Instant::now(), Arc::new(sts)),
        );
        true
    }

    /// The replicas of StatefulSet `namespace/name` as last seen, if it is known.
    pub fn replicas(&self, namespace: &str, name: &str) -> Option<u32> {
        let sts = self.statefulset(namespace, name)?;
        let replicas = sts.spec.as_ref()?.replicas.unwrap_or(1);
        u32::try_from(replicas).ok()
    }

    /// The membership recorded on StatefulSet `namespace/name` (`tessera.dev/membership`), if
    /// any and readable (an unreadable record is rendered as none: the replicas decide).
    pub fn membership(&self, namespace: &str, name: &str) -> Option<Record> {
        let sts = self.statefulset(namespace, name)?;
        let text = sts
            .metadata
            .annotations
            .as_ref()?
            .get(keys::ANNOTATION_MEMBERSHIP)?;
        Record::parse(text).ok()
    }

    fn statefulset(&self, namespace: &str, name: &str) -> Option<Arc<StatefulSet>> {
        let cached = self
            .statefulsets
            .get()?
            .get(&ObjectRef::new(name).within(namespace));
        cached.or_else(|| {
            let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            let key = (namespace.to_string(), name.to_string());
            live.get(&key)
                .filter(|(at, _)| at.elapsed() < LIVE_FOR)
                .map(|(_, sts)| sts.clone())
        })
    }

    /// Counts profile-set changes; callers await a change on it.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The profiles being served.
    pub fn profiles(&self) -> Arc<Vec<Profile>> {
        match self.profiles.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// True once profiles have been loaded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Settings the decision uses.
    pub fn admission(&self) -> &AdmissionConfig {
        &self.admission
    }

    /// Metric handles.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Per-request time limit.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
}
