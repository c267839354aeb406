//! End to end against a real kubelet with MPS isolation on: the device plugin (in this process,
//! NVML stand-in, `--mps-root` a directory of this test) registers with the node's kubelet; with
//! no MPS status its slots are Unhealthy and the node's allocatable `tessera.dev/gpu` is 0; once
//! the status is written (as `tessera mps-daemon` writes it) a share pod starts and its
//! container really has `CUDA_MPS_PIPE_DIRECTORY`, the pipe directory and the shared
//! `/dev/shm` from the node (files the test put there are visible inside).
//!
//! Needs `TESSERA_E2E_KUBECONFIG` (prints a skip line when unset), must run on the node as root,
//! and an image whose program prints its env, mounts and those directories:
//! `TESSERA_E2E_MOUNTS_IMAGE` (default `local/mounts:1`), built from `tests/images/mounts.c`:
//! `gcc -static -O2 -o mounts tests/images/mounts.c`, then the testbed's
//! `images/mkimage.py mounts.tar local/mounts:1 /mounts mounts=/mounts` and
//! `ctr -n k8s.io images import mounts.tar` (with the node's containerd socket).
//! `TESSERA_E2E_PLUGIN_DIR` and `TESSERA_E2E_NODE` as in `device_plugin_e2e.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod device_plugin_support;

use std::time::Duration;

use device_plugin_support::*;
use k8s_openapi::api::core::v1::{Namespace, Node as KubeNode, Pod};
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use tessera_core::annotations::{decode_assignment, encode_assignment};
use tessera_core::keys;
use tessera_core::plugin::mps::{MpsStatus, STATUS_VERSION};
use tessera_tests::e2e::{self, env};

const SLOW: Duration = Duration::from_secs(90);

/// The node's `(capacity, allocatable)` of `tessera.dev/gpu`.
async fn gpu_slots(nodes: &Api<KubeNode>, node: &str) -> Option<(String, String)> {
    let status = nodes.get(node).await.ok()?.status?;
    let capacity = status.capacity?.get(keys::RESOURCE_GPU)?.0.clone();
    let allocatable = status.allocatable?.get(keys::RESOURCE_GPU)?.0.clone();
    Some((capacity, allocatable))
}

fn share_pod(node: &str, ns: &str, gpu: &str) -> Pod {
    let mut pod = allocating_pod(
        "share",
        &jiff::Timestamp::now().to_string(),
        &[gpu.into()],
        4096,
        250,
    );
    let annotations = pod.metadata.annotations.as_mut().unwrap();
    let mut a = decode_assignment(&annotations[keys::ANNOTATION_GPU_ASSIGNMENT]).unwrap();
    a.node = node.to_string();
    annotations.insert(
        keys::ANNOTATION_GPU_ASSIGNMENT.into(),
        encode_assignment(&a),
    );
    pod.metadata.namespace = Some(ns.into());
    let spec = pod.spec.as_mut().unwrap();
    spec.node_name = Some(node.into());
    spec.restart_policy = Some("Never".into());
    spec.termination_grace_period_seconds = Some(1);
    let c = &mut spec.containers[0];
    c.image = Some(env("TESSERA_E2E_MOUNTS_IMAGE").unwrap_or_else(|| "local/mounts:1".into()));
    c.image_pull_policy = Some("Never".into());
    pod
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_share_container_reaches_the_mps_daemon_through_allocate_mounts() {
    let Some(kubeconfig) = e2e::kubeconfig("device_plugin_mps_e2e") else {
        return;
    };
    let client = e2e::client(&kubeconfig).await.unwrap();
    let nodes: Api<KubeNode> = Api::all(client.clone());
    let node_name = match env("TESSERA_E2E_NODE") {
        Some(n) => n,
        None => nodes.list(&Default::default()).await.unwrap().items[0]
            .metadata
            .name
            .clone()
            .unwrap(),
    };
    let ns_name = e2e::unique("tessera-e2e-mps");
    // The MPS root, as the DaemonSets share it: status file, pipe and shm on the node.
    let root = tempfile::Builder::new()
        .prefix("tessera-mps-e2e")
        .tempdir_in("/tmp")
        .unwrap();
    for dir in ["pipe", "shm"] {
        std::fs::create_dir(root.path().join(dir)).unwrap();
    }
    std::fs::write(root.path().join("pipe/control"), "").unwrap();
    std::fs::write(root.path().join("shm/from-the-daemon"), "").unwrap();

    let node = Node::two_gpus();
    let mut config = node.real_kubelet_config(&node_name, &ns_name);
    config.pod_resources_socket = None;
    config.mps_root = Some(root.path().to_path_buf());
    let plugin = OnCluster::start(client.clone(), &node_name, config).await;
    let metrics = &plugin.metrics;

    // No daemon: registered (8 slots known to the kubelet), but none allocatable, in a node
    // status the kubelet wrote after this plugin registered.
    let t0 = std::time::Instant::now();
    e2e::wait_for("registration", SLOW, || async {
        (metrics.registrations.get() > 0).then_some(())
    })
    .await
    .unwrap();
    // Heartbeats are written in whole seconds: a status of the registration's own second counts.
    let registered =
        k8s_openapi::jiff::Timestamp::from_second(k8s_openapi::jiff::Timestamp::now().as_second())
            .expect("a time in range");
    let none = ("8".to_string(), "0".to_string());
    e2e::wait_for(
        "capacity 8, allocatable 0 without a daemon",
        SLOW,
        || async {
            let n = nodes.get(&node_name).await.ok()?;
            let fresh = n.status?.conditions?.iter().any(|c| {
                c.type_ == "Ready"
                    && c.last_heartbeat_time
                        .as_ref()
                        .is_some_and(|b| b.0 >= registered)
            });
            (fresh && gpu_slots(&nodes, &node_name).await.as_ref() == Some(&none)).then_some(())
        },
    )
    .await
    .unwrap();
    println!(
        "no MPS daemon: {node_name} tessera.dev/gpu capacity 8, allocatable 0 after {:?}",
        t0.elapsed()
    );
    let status = MpsStatus {
        version: STATUS_VERSION.into(),
        gpus: vec![uuid(0), uuid(1)],
        multi_user: true,
        heartbeat: jiff::Timestamp::now().as_second(),
    };
    std::fs::write(root.path().join("status.json"), status.encode()).unwrap();
    // Keep the heartbeat fresh for the rest of the test, as the daemon does.
    let file = root.path().join("status.json");
    let beat = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let mut s = status.clone();
            s.heartbeat = jiff::Timestamp::now().as_second();
            let _ = std::fs::write(&file, s.encode());
        }
    });
    let t1 = std::time::Instant::now();
    let all = ("8".to_string(), "8".to_string());
    e2e::wait_for("allocatable 8 once the daemon is ready", SLOW, || async {
        (gpu_slots(&nodes, &node_name).await.as_ref() == Some(&all)).then_some(())
    })
    .await
    .unwrap();
    println!(
        "MPS daemon ready: allocatable tessera.dev/gpu=8 after {:?}",
        t1.elapsed()
    );

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(ns_name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns_name);
    pods.create(
        &PostParams::default(),
        &share_pod(&node_name, &ns_name, &uuid(1)),
    )
    .await
    .unwrap();
    let logs = e2e::wait_for("the share pod's output", SLOW, || async {
        let logs = pods.logs("share", &LogParams::default()).await.ok()?;
        logs.contains("sleeping").then_some(logs)
    })
    .await
    .unwrap();
    let pipe = root.path().join("pipe").display().to_string();
    let wanted = [
        format!("ENV CUDA_MPS_PIPE_DIRECTORY={pipe}"),
        "ENV CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=25".to_string(),
        "ENV CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=4096M".to_string(),
        format!("LS {pipe}/control"),
        "LS /dev/shm/from-the-daemon".to_string(),
    ];
    for line in &wanted {
        assert!(
            logs.lines().any(|l| l == line),
            "missing {line:?} in:\n{logs}"
        );
    }
    let mounts: Vec<&str> = logs
        .lines()
        .filter(|l| l.starts_with("MOUNT ") && (l.contains(&pipe) || l.contains(" /dev/shm ")))
        .collect();
    println!("share pod: {}\n{}", wanted.join("\n"), mounts.join("\n"));
    assert!(
        mounts.iter().any(|m| m.contains(&format!(" {pipe} "))),
        "{logs}"
    );

    namespaces
        .delete(&ns_name, &DeleteParams::default())
        .await
        .unwrap();
    beat.abort();
    plugin.stop().await;
}
