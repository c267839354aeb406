//! The pods on this node and the annotation writes the device plugin makes, behind traits so the
//! gRPC service can be tested without an apiserver. [`KubePods`] is the production
//! implementation: a reflector of the pods bound to this node, merge patches for writes.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tessera_core::annotations::{self, Assignment};
use tessera_core::keys;
use tessera_core::plugin::accounting::PodContainers;
use tessera_core::plugin::allocate::{BindPhase, PodView};
use tessera_core::plugin::cgroup::status_container_id;
use tokio_stream::StreamExt;

use crate::error::PluginError;

/// A boxed future, so the traits stay object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Pods bound to this node, and writes to their annotations.
pub trait Pods: Send + Sync + 'static {
    /// Every pod bound to this node, from the cache.
    fn on_node(&self) -> Result<Vec<PodView>, PluginError>;
    /// Every pod bound to this node with its running containers' IDs, from the cache (for
    /// per-container accounting).
    fn containers(&self) -> Result<Vec<PodContainers>, PluginError>;
    /// Every pod bound to this node, read fresh from the source. The kubelet admits a pod within
    /// milliseconds of its binding, often before the watch event reaches the cache, so a miss
    /// in the cache is retried with this before it becomes an error.
    fn refresh(&self) -> BoxFuture<'_, Result<Vec<PodView>, PluginError>>;
    /// Sets `bind-phase: allocated`.
    fn set_allocated<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), PluginError>>;
    /// Rewrites `gpu-assignment`.
    fn set_assignment<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
        assignment: &'a Assignment,
    ) -> BoxFuture<'a, Result<(), PluginError>>;
}

/// A node's `status.capacity` and `status.allocatable`: resource name to quantity.
pub type NodeResources = (BTreeMap<String, String>, BTreeMap<String, String>);

/// Writes to this node's annotations, and what its status advertises.
pub trait NodeAnnotations: Send + Sync + 'static {
    /// Writes `gpu-inventory` and `gpu-inventory-heartbeat` in one patch.
    fn write_inventory<'a>(
        &'a self,
        inventory: &'a str,
        heartbeat: &'a str,
    ) -> BoxFuture<'a, Result<(), PluginError>>;
    /// The node's capacity and allocatable, read fresh (to see another device plugin's GPUs).
    fn resources(&self) -> BoxFuture<'_, Result<NodeResources, PluginError>>;
}

/// What the device plugin reads from a pod. A `gpu-assignment` that does not decode is logged
/// and treated as absent: such a pod can never be matched, and the error says so.
pub fn pod_view(pod: &Pod) -> PodView {
    let notes = pod.metadata.annotations.as_ref();
    let get = |k: &str| notes.and_then(|n| n.get(k)).map(String::as_str);
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let assignment = get(keys::ANNOTATION_GPU_ASSIGNMENT).and_then(|text| {
        annotations::decode_assignment(text)
            .inspect_err(|e| tracing::warn!(pod = %format!("{namespace}/{name}"), error = %e, "unreadable gpu-assignment"))
            .ok()
    });
    let bind_time_ms = get(keys::ANNOTATION_BIND_TIME)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_millisecond());
    PodView {
        namespace,
        name,
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        phase: BindPhase::parse(get(keys::ANNOTATION_BIND_PHASE)),
        bind_time_ms,
        assignment,
    }
}

/// What accounting reads from a pod: its running containers (init containers included) by
/// runtime ID, and its assignment.
pub fn pod_containers(pod: &Pod) -> PodContainers {
    let status = pod.status.as_ref();
    let statuses = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .chain(status.and_then(|s| s.init_container_statuses.as_ref()))
        .flatten();
    let containers = statuses
        .filter(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        .filter_map(|c| {
            let id = status_container_id(c.container_id.as_deref()?);
            Some((c.name.clone(), id.to_string()))
        })
        .collect();
    // Read every scrape period: an unreadable assignment is logged by `pod_view`, not here.
    let assignment = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|n| n.get(keys::ANNOTATION_GPU_ASSIGNMENT))
        .and_then(|text| annotations::decode_assignment(text).ok());
    PodContainers {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        containers,
        assignment,
    }
}

/// [`Pods`] and [`NodeAnnotations`] against the apiserver.
#[derive(Clone)]
pub struct KubePods {
    client: kube::Client,
    node: String,
    store: Store<Pod>,
}

impl KubePods {
    /// Starts a reflector of the pods bound to `node`; returns once its first list arrived.
    pub async fn start(client: kube::Client, node: &str) -> Self {
        let api: Api<Pod> = Api::all(client.clone());
        let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let (store, writer) = reflector::store();
        let stream = reflector::reflector(writer, watcher(api, config))
            .default_backoff()
            .applied_objects();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                if let Err(e) = item {
                    tracing::warn!(error = %e, "pod watch error; retrying");
                }
            }
        });
        let _ = store.wait_until_ready().await;
        Self {
            client,
            node: node.to_string(),
            store,
        }
    }

    async fn patch_pod(
        &self,
        ns: &str,
        name: &str,
        notes: serde_json::Value,
    ) -> Result<(), PluginError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let patch = json!({ "metadata": { "annotations": notes } });
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| PluginError::Apiserver(format!("patch pod {ns}/{name}: {e}")))
    }
}

impl Pods for KubePods {
    fn on_node(&self) -> Result<Vec<PodView>, PluginError> {
        Ok(self.store.state().iter().map(|p| pod_view(p)).collect())
    }

    fn containers(&self) -> Result<Vec<PodContainers>, PluginError> {
        Ok(self
            .store
            .state()
            .iter()
            .map(|p| pod_containers(p))
            .collect())
    }

    fn refresh(&self) -> BoxFuture<'_, Result<Vec<PodView>, PluginError>> {
        Box::pin(async move {
            let api: Api<Pod> = Api::all(self.client.clone());
            let params =
                kube::api::ListParams::default().fields(&format!("spec.nodeName={}", self.node));
            let list = api.list(&params).await.map_err(|e| {
                PluginError::Apiserver(format!("list pods on node {}: {e}", self.node))
            })?;
            Ok(list.items.iter().map(pod_view).collect())
        })
    }

    fn set_allocated<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), PluginError>> {
        Box::pin(self.patch_pod(
            ns,
            name,
            json!({ keys::ANNOTATION_BIND_PHASE: keys::BIND_PHASE_ALLOCATED }),
        ))
    }

    fn set_assignment<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
        assignment: &'a Assignment,
    ) -> BoxFuture<'a, Result<(), PluginError>> {
        let text = annotations::encode_assignment(assignment);
        Box::pin(self.patch_pod(ns, name, json!({ keys::ANNOTATION_GPU_ASSIGNMENT: text })))
    }
}

impl NodeAnnotations for KubePods {
    fn write_inventory<'a>(
        &'a self,
        inventory: &'a str,
        heartbeat: &'a str,
    ) -> BoxFuture<'a, Result<(), PluginError>> {
        Box::pin(async move {
            let api: Api<Node> = Api::all(self.client.clone());
            let patch = json!({ "metadata": { "annotations": {
                keys::ANNOTATION_GPU_INVENTORY: inventory,
                keys::ANNOTATION_GPU_INVENTORY_HEARTBEAT: heartbeat,
            }}});
            api.patch(&self.node, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
                .map_err(|e| PluginError::Apiserver(format!("patch node {}: {e}", self.node)))
        })
    }

    fn resources(&self) -> BoxFuture<'_, Result<NodeResources, PluginError>> {
        Box::pin(async move {
            let api: Api<Node> = Api::all(self.client.clone());
            let node = api
                .get(&self.node)
                .await
                .map_err(|e| PluginError::Apiserver(format!("get node {}: {e}", self.node)))?;
            let status = node.status.unwrap_or_default();
            let plain = |m: Option<
                BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
            >| {
                m.unwrap_or_default()
                    .into_iter()
                    .map(|(k, q)| (k, q.0))
                    .collect::<BTreeMap<_, _>>()
            };
            Ok((plain(status.capacity), plain(status.allocatable)))
        })
    }
}

/// In-memory [`Pods`] and [`NodeAnnotations`]: pods are set by the caller, writes change them and
/// are recorded. For tests and for running the plugin without a cluster.
pub struct MemoryPods {
    pods: Mutex<Vec<Pod>>,
    inventory: Mutex<Vec<(String, String)>>,
    resources: Mutex<NodeResources>,
    writes: tokio::sync::watch::Sender<usize>,
}

impl Default for MemoryPods {
    fn default() -> Self {
        Self {
            pods: Mutex::default(),
            inventory: Mutex::default(),
            resources: Mutex::default(),
            writes: tokio::sync::watch::channel(0).0,
        }
    }
}

impl MemoryPods {
    /// Counts every write (pod annotations and inventory), to await one without polling.
    pub fn writes(&self) -> tokio::sync::watch::Receiver<usize> {
        self.writes.subscribe()
    }

    /// Replaces the pods on the node.
    pub fn set(&self, pods: Vec<Pod>) {
        if let Ok(mut p) = self.pods.lock() {
            *p = pods;
        }
    }

    /// Sets what the node's status advertises (`(capacity, allocatable)`).
    pub fn set_resources(&self, resources: NodeResources) {
        if let Ok(mut r) = self.resources.lock() {
            *r = resources;
        }
    }

    /// A copy of the current pods.
    pub fn pods(&self) -> Vec<Pod> {
        self.pods.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Every inventory write so far: `(inventory, heartbeat)`.
    pub fn inventory_writes(&self) -> Vec<(String, String)> {
        self.inventory.lock().map(|w| w.clone()).unwrap_or_default()
    }

    fn annotate(&self, ns: &str, name: &str, key: &str, value: String) -> Result<(), PluginError> {
        let mut pods = self
            .pods
            .lock()
            .map_err(|_| PluginError::Apiserver("poisoned".into()))?;
        let pod = pods
            .iter_mut()
            .find(|p| {
                p.metadata.namespace.as_deref() == Some(ns)
                    && p.metadata.name.as_deref() == Some(name)
            })
            .ok_or_else(|| PluginError::Apiserver(format!("pod {ns}/{name} not found")))?;
        pod.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(key.to_string(), value);
        self.writes.send_modify(|n| *n += 1);
        Ok(())
    }
}

impl Pods for MemoryPods {
    fn on_node(&self) -> Result<Vec<PodView>, PluginError> {
        Ok(self.pods().iter().map(pod_view).collect())
    }

    fn containers(&self) -> Result<Vec<PodContainers>, PluginError> {
        Ok(self.pods().iter().map(pod_containers).collect())
    }

    fn refresh(&self) -> BoxFuture<'_, Result<Vec<PodView>, PluginError>> {
        let pods = self.on_node();
        Box::pin(async move { pods })
    }

    fn set_allocated<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), PluginError>> {
        let r = self.annotate(
            ns,
            name,
            keys::ANNOTATION_BIND_PHASE,
            keys::BIND_PHASE_ALLOCATED.into(),
        );
        Box::pin(async move { r })
    }

    fn set_assignment<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
        assignment: &'a Assignment,
    ) -> BoxFuture<'a, Result<(), PluginError>> {
        let text = annotations::encode_assignment(assignment);
        let r = self.annotate(ns, name, keys::ANNOTATION_GPU_ASSIGNMENT, text);
        Box::pin(async move { r })
    }
}

impl NodeAnnotations for MemoryPods {
    fn write_inventory<'a>(
        &'a self,
        inventory: &'a str,
        heartbeat: &'a str,
    ) -> BoxFuture<'a, Result<(), PluginError>> {
        if let Ok(mut w) = self.inventory.lock() {
            w.push((inventory.to_string(), heartbeat.to_string()));
        }
        self.writes.send_modify(|n| *n += 1);
        Box::pin(async { Ok(()) })
    }

    fn resources(&self) -> BoxFuture<'_, Result<NodeResources, PluginError>> {
        let r = self
            .resources
            .lock()
            .map(|r| r.clone())
            .map_err(|_| PluginError::Apiserver("poisoned".into()));
        Box::pin(async move { r })
    }
}

/// Shares one value as both traits.
pub fn shared<T: Pods + NodeAnnotations>(
    t: T,
) -> (Arc<T>, Arc<dyn Pods>, Arc<dyn NodeAnnotations>) {
    let t = Arc::new(t);
    (Arc::clone(&t), t.clone(), t)
}
