//! The webhook's shared state: the profiles being served (swapped whole when a new set loads),
//! readiness, the admission settings and the metric handles.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::runtime::reflector::{ObjectRef, Store};
use tessera_inject::Profile;
use tessera_kernel::ensemble::Record;
use tessera_kernel::keys;

use crate::config::AdmissionConfig;
use crate::metrics::Metrics;

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
}

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

    /// Reads StatefulSets' replicas from `store` from now on (the peers controller's cache).
    pub fn set_statefulsets(&self, store: Store<StatefulSet>) {
        let _ = self.statefulsets.set(store);
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
        self.statefulsets
            .get()?
            .get(&ObjectRef::new(name).within(namespace))
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
