//! What the e2e tests share: a namespace with fake GPU nodes, an in-process extender watching
//! the cluster, pods, and what the apiserver holds about GPU assignments.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tessera_core::annotations;
use tessera_core::inventory::NodeInventory;
use tessera_core::keys;
use tessera_core::testing;
use tessera_extender::api_binder::ApiBinder;
use tessera_extender::watch::{self, WatchConfig};
use tessera_extender::{Config, ExtenderState, router};

use crate::e2e;

/// How long the e2e tests wait for the cluster to catch up.
pub const SYNC: Duration = Duration::from_secs(20);

/// A namespace, three fake GPU nodes (Node objects with the device plugin's annotations and
/// capacity, no kubelet behind them) and a scheduler name of their own; removed on drop.
pub struct Harness {
    /// The cluster's kubeconfig.
    pub kubeconfig: std::path::PathBuf,
    /// Client of the cluster.
    pub client: Client,
    /// The test's namespace.
    pub ns: String,
    /// The scheduler name the test's pods carry.
    pub scheduler: String,
    /// The fake GPU nodes.
    pub nodes: Vec<String>,
}

impl Harness {
    /// Creates the namespace and three nodes of two GPUs, one per zone.
    pub async fn start(kubeconfig: &std::path::Path) -> Harness {
        Self::start_with(kubeconfig, 3, 2).await
    }

    /// Creates the namespace and `count` nodes of `gpus` GPUs over three zones.
    pub async fn start_with(kubeconfig: &std::path::Path, count: usize, gpus: u32) -> Harness {
        let client = e2e::client(kubeconfig).await.unwrap();
        let ns = e2e::unique("tessera-e2e-ext");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &Namespace {
                    metadata: ObjectMeta {
                        name: Some(ns.clone()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        // Pods are refused until the namespace's default service account exists.
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
        e2e::wait_for("the default service account", SYNC, || {
            let accounts = accounts.clone();
            async move { accounts.get_opt("default").await.ok().flatten() }
        })
        .await
        .unwrap();
        let nodes: Vec<String> = (0..count).map(|i| format!("{ns}-gpu-{i}")).collect();
        let zones = ["zone-a", "zone-b", "zone-c"];
        let creating = nodes
            .iter()
            .enumerate()
            .map(|(i, name)| create_gpu_node_in(&client, name, zones[i % 3], gpus, &ns));
        futures::stream::iter(creating)
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
        Harness {
            kubeconfig: kubeconfig.to_path_buf(),
            scheduler: format!("{ns}-sched"),
            client,
            ns,
            nodes,
        }
    }

    /// An extender watching this cluster, served on 127.0.0.1, once its caches have synced.
    pub async fn extender(&self) -> (Arc<ExtenderState>, SocketAddr, tokio::task::JoinHandle<()>) {
        let (state, watching) = self.extender_state_watching(false).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (state, addr, watching)
    }

    /// The extender's state and its watch of this cluster, once its caches have synced;
    /// `client_certificates` as `--client-ca` sets it.
    pub async fn extender_state_watching(
        &self,
        client_certificates: bool,
    ) -> (Arc<ExtenderState>, tokio::task::JoinHandle<()>) {
        let config = Config {
            reservation_timeout: Duration::from_secs(60),
            heartbeat_max_age: Some(Duration::from_secs(600)),
            client_certificates,
            ..Config::default()
        };
        let state = Arc::new(ExtenderState::new(
            config,
            Arc::new(ApiBinder::new(self.client.clone())),
        ));
        let watching = tokio::spawn(watch::run(
            self.client.clone(),
            state.clone(),
            WatchConfig {
                scheduler_name: self.scheduler.clone(),
            },
        ));
        let ready = state.clone();
        e2e::wait_for("the extender's caches", SYNC, || {
            let ready = ready.clone();
            async move { ready.is_ready().then_some(()) }
        })
        .await
        .unwrap();
        (state, watching)
    }

    /// Creates a pod with the test's scheduler name (tolerating the fake nodes' not-ready taint).
    pub async fn create_pod(
        &self,
        name: &str,
        limits: &[(&str, &str)],
        labels: &[(&str, &str)],
    ) -> Pod {
        self.create_pod_for(&self.scheduler, name, limits, labels)
            .await
    }

    /// Creates a pod for the scheduler profile `scheduler`.
    pub async fn create_pod_for(
        &self,
        scheduler: &str,
        name: &str,
        limits: &[(&str, &str)],
        labels: &[(&str, &str)],
    ) -> Pod {
        let limits: BTreeMap<&str, &str> = limits.iter().copied().collect();
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        // Only this test's nodes (a real node of the cluster may carry a GPU inventory of its
        // own), by the label they were made with: one selector term, as a user's pod would
        // carry, not one per node.
        let selector = match self.nodes.is_empty() {
            true => json!(null),
            false => json!({HARNESS_LABEL: self.ns}),
        };
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "nodeSelector": selector,
                "schedulerName": scheduler,
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"},
                                {"key": "node.kubernetes.io/unreachable", "operator": "Exists"}],
                "containers": [{
                    "name": "main",
                    "image": "local/app:1",
                    "imagePullPolicy": "Never",
                    "resources": {"limits": limits}
                }]
            }
        }))
        .unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap()
    }

    /// The test namespace's pods.
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }
}

/// Removes what the test made, pass or fail (on its own thread: the test's runtime may be gone).
impl Drop for Harness {
    fn drop(&mut self) {
        let ns = self.ns.clone();
        let nodes = self.nodes.clone();
        e2e::cleanup_blocking(self.kubeconfig.clone(), move |client| async move {
            let now = DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            };
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let _ = pods.delete_collection(&now, &Default::default()).await;
            let node_api: Api<Node> = Api::all(client.clone());
            for n in &nodes {
                let _ = node_api.delete(n, &DeleteParams::default()).await;
            }
            let namespaces: Api<Namespace> = Api::all(client);
            let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
        });
    }
}

/// A Node object with the annotations the device plugin writes and the capacity a kubelet would
/// report (10 slots per GPU), but no kubelet behind it.
pub async fn create_gpu_node(client: &Client, name: &str, zone: &str, gpus: u32) {
    create_gpu_node_in(client, name, zone, gpus, "").await;
}

/// The label naming the harness (its namespace) that made a node.
pub const HARNESS_LABEL: &str = "tessera.dev/e2e-harness";

/// As [`create_gpu_node`], labelled [`HARNESS_LABEL`]`=harness`.
pub async fn create_gpu_node_in(client: &Client, name: &str, zone: &str, gpus: u32, harness: &str) {
    let inventory: NodeInventory = testing::gpus(name, gpus, "Tesla-T4", 15360);
    let node: Node = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": {keys::LABEL_ZONE: zone, "tessera.dev/e2e": "true", HARNESS_LABEL: harness},
            "annotations": {
                keys::ANNOTATION_GPU_INVENTORY: annotations::encode_inventory(&inventory),
                keys::ANNOTATION_GPU_INVENTORY_HEARTBEAT: tessera_extender::clock::now_rfc3339(),
            }
        }
    }))
    .unwrap();
    let nodes = Api::<Node>::all(client.clone());
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let capacity = json!({"cpu": "16", "memory": "64Gi", "pods": "110",
                          keys::RESOURCE_GPU: (gpus * 10).to_string()});
    let status = json!({"status": {"capacity": capacity, "allocatable": capacity}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// Per GPU UUID: (MiB, thousandths of compute) assigned by all bound pods, from the apiserver;
/// panics on a pod bound to another node than its assignment names.
pub async fn assigned(h: &Harness) -> HashMap<String, (u64, u32)> {
    let mut per_gpu: HashMap<String, (u64, u32)> = HashMap::new();
    for pod in h.pods().list(&Default::default()).await.unwrap() {
        let Some(text) = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(keys::ANNOTATION_GPU_ASSIGNMENT))
        else {
            continue;
        };
        let a = annotations::decode_assignment(text).unwrap();
        // Unbound with an assignment: a bind in flight, or one a killed extender left between
        // the annotation and the Binding; it holds nothing on the GPU (the leader counts it only
        // until its reservation timeout, then removes it).
        let Some(node) = pod.spec.as_ref().unwrap().node_name.as_deref() else {
            continue;
        };
        assert_eq!(node, a.node.as_str(), "bound where its assignment says");
        for s in a.shares() {
            let e = per_gpu.entry(s.uuid.clone()).or_default();
            e.0 += s.mem_mib;
            e.1 += s.core_milli;
        }
    }
    per_gpu
}
