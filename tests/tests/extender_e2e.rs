//! The extender against a real apiserver (`TESSERA_E2E_KUBECONFIG`; skipped, saying so, when
//! unset). The test plays kube-scheduler: it sends filter, prioritize and bind for real pods to
//! an extender that watches the cluster, then checks what landed in the apiserver, that the
//! live state equals one rebuilt by a fresh extender, and that deleting pods frees their shares.
//! Pods carry a scheduler name no scheduler serves, so only this test places them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tessera_core::annotations;
use tessera_core::inventory::NodeInventory;
use tessera_core::keys;
use tessera_core::request::Translation;
use tessera_core::score::Policy;
use tessera_core::testing;
use tessera_extender::api_binder::ApiBinder;
use tessera_extender::watch::{self, WatchConfig};
use tessera_extender::{Config, ExtenderState, router};
use tessera_tests::e2e;

const SYNC: Duration = Duration::from_secs(20);

struct Harness {
    kubeconfig: std::path::PathBuf,
    client: Client,
    ns: String,
    scheduler: String,
    nodes: Vec<String>,
}

impl Harness {
    async fn start(kubeconfig: &std::path::Path) -> Harness {
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
        let mut nodes = Vec::new();
        for (i, zone) in ["zone-a", "zone-b", "zone-c"].iter().enumerate() {
            let name = format!("{ns}-gpu-{i}");
            create_gpu_node(&client, &name, zone, 2).await;
            nodes.push(name);
        }
        Harness {
            kubeconfig: kubeconfig.to_path_buf(),
            scheduler: format!("{ns}-sched"),
            client,
            ns,
            nodes,
        }
    }

    /// An extender watching this cluster, served on 127.0.0.1, once its caches have synced.
    async fn extender(&self) -> (Arc<ExtenderState>, SocketAddr, tokio::task::JoinHandle<()>) {
        let config = Config {
            policy: Policy::Fragmentation,
            slots_per_gpu: 10,
            translation: Translation::default(),
            reservation_timeout: Duration::from_secs(60),
            heartbeat_max_age: Some(Duration::from_secs(600)),
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let ready = state.clone();
        e2e::wait_for("the extender's caches", SYNC, || {
            let ready = ready.clone();
            async move { ready.is_ready().then_some(()) }
        })
        .await
        .unwrap();
        (state, addr, watching)
    }

    async fn create_pod(
        &self,
        name: &str,
        limits: &[(&str, &str)],
        labels: &[(&str, &str)],
    ) -> Pod {
        let limits: BTreeMap<&str, &str> = limits.iter().copied().collect();
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "schedulerName": self.scheduler,
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

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }
}

/// Removes what the test made, pass or fail (on its own thread: the test's runtime may be gone).
impl Drop for Harness {
    fn drop(&mut self) {
        // A client of its own: the test's runtime, which drives `self.client`, is blocked here.
        let kubeconfig = self.kubeconfig.clone();
        let ns = self.ns.clone();
        let nodes = self.nodes.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(client) = e2e::client(&kubeconfig).await else {
                    return;
                };
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
        });
        let _ = cleanup.join();
    }
}

/// A Node object with the annotations the device plugin writes (no kubelet behind it).
async fn create_gpu_node(client: &Client, name: &str, zone: &str, gpus: u32) {
    let inventory: NodeInventory = testing::gpus(name, gpus, "Tesla-T4", 15360);
    let node: Node = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": {keys::LABEL_ZONE: zone, "tessera.dev/e2e": "true"},
            "annotations": {
                keys::ANNOTATION_GPU_INVENTORY: annotations::encode_inventory(&inventory),
                keys::ANNOTATION_GPU_INVENTORY_HEARTBEAT: tessera_extender::clock::now_rfc3339(),
            }
        }
    }))
    .unwrap();
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
}

async fn post(addr: SocketAddr, verb: &str, body: &Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/{verb}"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{verb}");
    resp.json().await.unwrap()
}

/// What kube-scheduler does with the extender: filter, prioritize, bind to the best node.
/// Returns the bind error (empty on success), or the filter's reasons when nothing passed.
async fn schedule(addr: SocketAddr, pod: &Pod, nodes: &[String]) -> Result<String, Value> {
    let args = json!({"Pod": pod, "NodeNames": nodes, "Nodes": null});
    let filtered = post(addr, "filter", &args).await;
    let passed: Vec<String> = serde_json::from_value(filtered["NodeNames"].clone()).unwrap();
    if passed.is_empty() {
        return Err(filtered);
    }
    let args = json!({"Pod": pod, "NodeNames": passed, "Nodes": null});
    let scores: Vec<Value> = serde_json::from_value(post(addr, "prioritize", &args).await).unwrap();
    let best = scores
        .iter()
        .max_by_key(|s| s["Score"].as_i64().unwrap())
        .unwrap()["Host"]
        .as_str()
        .unwrap()
        .to_string();
    let bind = json!({
        "PodName": pod.metadata.name,
        "PodNamespace": pod.metadata.namespace,
        "PodUID": pod.metadata.uid,
        "Node": best,
    });
    Ok(post(addr, "bind", &bind).await["Error"]
        .as_str()
        .unwrap()
        .to_string())
}

/// Per GPU UUID: (MiB, thousandths of compute) assigned by all bound pods, from the apiserver.
async fn assigned(h: &Harness) -> HashMap<String, (u64, u32)> {
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
        assert_eq!(
            pod.spec.as_ref().unwrap().node_name.as_deref(),
            Some(a.node.as_str())
        );
        for s in a.shares() {
            let e = per_gpu.entry(s.uuid.clone()).or_default();
            e.0 += s.mem_mib;
            e.1 += s.core_milli;
        }
    }
    per_gpu
}

#[tokio::test]
async fn extender_binds_real_pods_without_over_commit_and_a_restart_rebuilds_the_same_state() {
    let Some(kubeconfig) = e2e::kubeconfig("extender_binds_real_pods") else {
        return;
    };
    let h = Harness::start(&kubeconfig).await;
    let (state, addr, watching) = h.extender().await;

    // 12 pods of 7000 MiB and 40% compute on 6 GPUs of 15 GiB: 2 per GPU by memory and by
    // compute; a 13th does not fit anywhere.
    let mut bound = 0;
    for i in 0..13 {
        let pod = h
            .create_pod(
                &format!("share-{i}"),
                &[
                    ("tessera.dev/gpu-mem", "7000"),
                    ("tessera.dev/gpu-core", "40"),
                ],
                &[],
            )
            .await;
        match schedule(addr, &pod, &h.nodes).await {
            Ok(err) if err.is_empty() => bound += 1,
            Ok(err) => panic!("bind of share-{i} failed: {err}"),
            Err(filtered) => {
                assert_eq!(i, 12, "share-{i} found no node: {filtered}");
                let why = filtered["FailedNodes"][&h.nodes[0]].as_str().unwrap();
                assert!(why.contains("MiB free, needs 7000"), "{why}");
            }
        }
    }
    let per_gpu = assigned(&h).await;
    assert_eq!(bound, 12, "{per_gpu:?}");
    assert_eq!(per_gpu.len(), 6, "{per_gpu:?}");
    for (gpu, (mem, core)) in &per_gpu {
        assert!(
            *mem <= 15360 && *core <= 1000,
            "{gpu} over-committed: {mem} MiB, {core}"
        );
    }
    for pod in h.pods().list(&Default::default()).await.unwrap() {
        let a = pod.metadata.annotations.unwrap_or_default();
        if pod.spec.unwrap().node_name.is_some() {
            assert_eq!(
                a.get(keys::ANNOTATION_BIND_PHASE).map(String::as_str),
                Some(keys::BIND_PHASE_ALLOCATING)
            );
            assert!(a.contains_key(keys::ANNOTATION_BIND_TIME));
        }
    }
    // The watch confirms every reservation.
    let s = state.clone();
    e2e::wait_for("reservations confirmed by the watch", SYNC, || {
        let s = s.clone();
        async move {
            (s.read().reservations.is_empty() && s.read().ledger.pod_count() == 12).then_some(())
        }
    })
    .await
    .unwrap();

    // A second extender started from nothing rebuilds exactly the same state.
    let (fresh, _, fresh_watch) = h.extender().await;
    fresh.update(|c| c.refresh_mix());
    state.update(|c| c.refresh_mix());
    assert!(
        fresh.read().same_state(&state.read()),
        "rebuilt state differs from the live one"
    );
    fresh_watch.abort();

    // Deleting pods frees their shares, and a pod that did not fit now does.
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    for i in 0..3 {
        h.pods().delete(&format!("share-{i}"), &now).await.unwrap();
    }
    let s = state.clone();
    e2e::wait_for("deleted pods' shares freed", SYNC, || {
        let s = s.clone();
        async move { (s.read().ledger.pod_count() == 9).then_some(()) }
    })
    .await
    .unwrap();
    let late = h.pods().get("share-12").await.unwrap();
    assert_eq!(schedule(addr, &late, &h.nodes).await, Ok(String::new()));
    watching.abort();
}

#[tokio::test]
async fn quorum_members_land_on_different_nodes_and_concurrent_binds_never_share_a_gpu() {
    let Some(kubeconfig) = e2e::kubeconfig("quorum_and_concurrent_binds") else {
        return;
    };
    let h = Harness::start(&kubeconfig).await;
    let (state, addr, watching) = h.extender().await;

    let group = [
        (keys::LABEL_GROUP, "zk"),
        (keys::LABEL_QUORUM, "true"),
        ("tessera.dev/group-size", "3"),
    ];
    let mut placed = Vec::new();
    for i in 0..3 {
        let pod = h.create_pod(&format!("zk-{i}"), &[], &group).await;
        assert_eq!(schedule(addr, &pod, &h.nodes).await, Ok(String::new()));
        let s = state.clone();
        let key = format!("{}/zk-{i}", h.ns);
        e2e::wait_for("the member in the state", SYNC, || {
            let s = s.clone();
            let key = key.clone();
            async move { s.read().pod(&key).and_then(|f| f.node.clone()) }
        })
        .await
        .unwrap();
        placed.push(
            h.pods()
                .get(&format!("zk-{i}"))
                .await
                .unwrap()
                .spec
                .unwrap()
                .node_name
                .unwrap(),
        );
    }
    placed.sort();
    placed.dedup();
    assert_eq!(placed.len(), 3, "quorum members share a node: {placed:?}");

    // 8 whole-GPU pods bound at once on 6 GPUs: 6 succeed, 2 are refused, none shares a GPU.
    let mut pods = Vec::new();
    for i in 0..8 {
        pods.push(
            h.create_pod(&format!("whole-{i}"), &[("tessera.dev/gpu", "1")], &[])
                .await,
        );
    }
    let args: Vec<Value> = pods
        .iter()
        .map(|p| json!({"Pod": p, "NodeNames": h.nodes, "Nodes": null}))
        .collect();
    for a in &args {
        post(addr, "filter", a).await;
    }
    let binds = pods.iter().enumerate().map(|(i, p)| {
        let body = json!({
            "PodName": p.metadata.name, "PodNamespace": p.metadata.namespace,
            "PodUID": p.metadata.uid, "Node": h.nodes[i % 3],
        });
        async move {
            post(addr, "bind", &body).await["Error"]
                .as_str()
                .unwrap()
                .to_string()
        }
    });
    let errors = futures::future::join_all(binds).await;
    let ok = errors.iter().filter(|e| e.is_empty()).count();
    assert_eq!(ok, 6, "{errors:?}");
    for e in errors.iter().filter(|e| !e.is_empty()) {
        assert!(e.contains("cannot bind"), "{e}");
    }
    for (gpu, (_, core)) in assigned(&h).await {
        assert!(core <= 1000, "{gpu} shared by whole-GPU pods: {core}");
    }
    watching.abort();
}
