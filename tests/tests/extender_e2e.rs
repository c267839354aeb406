//! The extender against a real apiserver (`TESSERA_E2E_KUBECONFIG`; skipped, saying so, when
//! unset). The test plays kube-scheduler: it sends filter, prioritize and bind for real pods to
//! an extender that watches the cluster, then checks what landed in the apiserver, that the
//! live state equals one rebuilt by a fresh extender, and that deleting pods frees their shares.
//! Pods carry a scheduler name no scheduler serves, so only this test places them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::net::SocketAddr;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tessera_core::annotations::{self, Assignment, ContainerAssignment, GpuShare};
use tessera_core::keys;
use tessera_tests::cluster::{Harness, SYNC, assigned};
use tessera_tests::e2e;
use tessera_tests::http::post_ok as post;

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
    // Sparse: a node left out scores 0 (kube-scheduler adds nothing to it).
    let scores: Vec<Value> = serde_json::from_value(post(addr, "prioritize", &args).await).unwrap();
    let best = scores
        .iter()
        .max_by_key(|s| s["Score"].as_i64().unwrap())
        .map_or(passed[0].clone(), |s| {
            s["Host"].as_str().unwrap().to_string()
        });
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

/// A pod's assignment annotation, if any.
async fn assignment_of(h: &Harness, name: &str) -> Option<String> {
    let pod = h.pods().get(name).await.unwrap();
    pod.metadata
        .annotations
        .and_then(|a| a.get(keys::ANNOTATION_GPU_ASSIGNMENT).cloned())
}

async fn annotate(h: &Harness, name: &str, text: &str) {
    let patch = json!({"metadata": {"annotations": {keys::ANNOTATION_GPU_ASSIGNMENT: text}}});
    h.pods()
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test]
async fn assignments_left_by_binds_that_never_completed_are_removed_and_bound_ones_kept() {
    let Some(kubeconfig) = e2e::kubeconfig("stale_assignments_removed") else {
        return;
    };
    let h = Harness::start(&kubeconfig).await;
    let node = h.nodes[0].clone();
    let text = annotations::encode_assignment(&Assignment {
        node: node.clone(),
        containers: vec![ContainerAssignment {
            container: "main".into(),
            init: false,
            gpus: vec![GpuShare {
                uuid: format!("{node}-gpu-0"),
                mem_mib: 4000,
                core_milli: 300,
            }],
        }],
    });
    let share = [(keys::RESOURCE_GPU, "1"), (keys::RESOURCE_GPU_MEM, "4000")];
    // What a bind killed between its annotation and its Binding leaves, and a completed bind.
    h.create_pod("left-over", &share, &[]).await;
    annotate(&h, "left-over", &text).await;
    h.create_pod("bound", &share, &[]).await;
    annotate(&h, "bound", &text).await;
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bound"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    h.pods()
        .create_subresource::<_, Value>("binding", "bound", &PostParams::default(), &binding)
        .await
        .unwrap();

    // A fresh extender finds the left-over in its first list, and one written later by watch.
    let (_, _, watching) = h.extender().await;
    h.create_pod("left-later", &share, &[]).await;
    annotate(&h, "left-later", &text).await;
    for name in ["left-over", "left-later"] {
        e2e::wait_for(name, SYNC, || async {
            assignment_of(&h, name).await.is_none().then_some(())
        })
        .await
        .unwrap();
    }
    assert_eq!(assignment_of(&h, "bound").await, Some(text));
    watching.abort();
}

/// Whether a watched pod has its node and its GPU assignment.
fn node_and_assignment(pod: &Pod) -> (bool, bool) {
    let bound = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some();
    let assigned = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(keys::ANNOTATION_GPU_ASSIGNMENT));
    (bound, assigned)
}

#[tokio::test]
async fn a_bind_writes_the_node_and_the_assignment_in_one_update() {
    use futures::{StreamExt, TryStreamExt};
    use kube::api::{WatchEvent, WatchParams};

    let Some(kubeconfig) = e2e::kubeconfig("a_bind_writes_the_node_and_the_assignment") else {
        return;
    };
    let h = Harness::start(&kubeconfig).await;
    let (_state, addr, watching) = h.extender().await;
    let share = [
        (keys::RESOURCE_GPU, "1"),
        (keys::RESOURCE_GPU_MEM, "4000"),
        (keys::RESOURCE_GPU_CORE, "30"),
    ];
    let pod = h.create_pod("one-write", &share, &[]).await;
    let version = pod.metadata.resource_version.clone().unwrap();
    let params = WatchParams::default().fields("metadata.name=one-write");
    let mut events = h.pods().watch(&params, &version).await.unwrap().boxed();
    let error = schedule(addr, &pod, &h.nodes).await.unwrap();
    assert_eq!(error, "", "bind answered an error");
    // Every version of the pod after its creation, until it is bound.
    let mut seen: Vec<(bool, bool)> = Vec::new();
    let deadline = tokio::time::Instant::now() + SYNC;
    while seen.last().is_none_or(|&(bound, _)| !bound) {
        let event = tokio::time::timeout_at(deadline, events.try_next())
            .await
            .expect("the pod is bound within the time limit")
            .unwrap()
            .expect("the watch stays open");
        if let WatchEvent::Modified(p) = event {
            seen.push(node_and_assignment(&p));
        }
    }
    assert_eq!(
        seen,
        vec![(true, true)],
        "one update sets the node and the assignment together"
    );

    // The Binding's UID is a precondition: a pod re-created under the same name is refused and
    // left unbound, without the assignment.
    let binder = tessera_extender::api_binder::ApiBinder::new(h.client.clone());
    let other = h.create_pod("recreated", &share, &[]).await;
    let target = tessera_extender::binder::BindTarget {
        namespace: h.ns.clone(),
        name: "recreated".into(),
        uid: "00000000-0000-0000-0000-00000000dead".into(),
        node: h.nodes[0].clone(),
        annotations: [(keys::ANNOTATION_GPU_ASSIGNMENT.to_string(), "x".to_string())].into(),
        writer: tessera_core::annotations::Writer {
            holder: "test".into(),
            term: 1,
        },
    };
    use tessera_extender::binder::Binder;
    let refused = binder.bind(target).await.unwrap_err();
    assert!(
        refused.contains("Precondition") || refused.contains("UID"),
        "{refused}"
    );
    let now = h.pods().get("recreated").await.unwrap();
    assert_eq!(
        node_and_assignment(&now),
        (false, false),
        "{:?}",
        other.metadata.uid
    );
    watching.abort();
}
