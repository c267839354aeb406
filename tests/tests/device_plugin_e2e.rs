//! End to end against a real kubelet: the device plugin (in this process, with the NVML stand-in)
//! registers with the node's kubelet, and real pods get exactly the env of their
//! `gpu-assignment`; two same-size pods pending at once end with annotations that agree with what
//! each container really got, after reconciliation against the real PodResources API.
//!
//! Needs `TESSERA_E2E_KUBECONFIG` (prints a skip line when unset) and must run on the node, as
//! root (it serves in the kubelet's device plugin directory). Optional:
//! - `TESSERA_E2E_NODE`: the node (default: the first Ready node);
//! - `TESSERA_E2E_PLUGIN_DIR` (default `/var/lib/kubelet/device-plugins`);
//! - `TESSERA_E2E_POD_RESOURCES_SOCKET` (default `/var/lib/kubelet/pod-resources/kubelet.sock`);
//! - `TESSERA_E2E_IMAGE` (default `local/app:1`, an image whose program prints its environment
//!   and sleeps; pulled `Never`);
//! - `TESSERA_E2E_KUBELET_RESTART`: a shell command that restarts the kubelet; when set, the test
//!   also checks that capacity comes back and running pods are untouched.
//!
//! Pods are bound by `nodeName` with the annotations the extender would write, so no scheduler
//! or extender is involved.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // helpers outside #[test] too

mod device_plugin_support;

use std::path::PathBuf;
use std::time::Duration;

use device_plugin_support::*;
use k8s_openapi::api::core::v1::{Namespace, Node as KubeNode, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use tessera_core::annotations::decode_assignment;
use tessera_core::keys;
use tessera_tests::e2e::{env, ready_node};

const SLOW: Duration = Duration::from_secs(90);

async fn client(path: &str) -> kube::Client {
    let file = kube::config::Kubeconfig::read_from(path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn pod(node: &str, name: &str, bind_time: &str, gpu: &str) -> Pod {
    let mut pod = allocating_pod(name, bind_time, &[gpu.to_string()], 4096, 250);
    let text = pod.metadata.annotations.as_ref().unwrap()[keys::ANNOTATION_GPU_ASSIGNMENT].clone();
    let mut a = decode_assignment(&text).unwrap();
    a.node = node.to_string();
    pod.metadata.annotations.as_mut().unwrap().insert(
        keys::ANNOTATION_GPU_ASSIGNMENT.into(),
        tessera_core::annotations::encode_assignment(&a),
    );
    let spec = pod.spec.as_mut().unwrap();
    spec.node_name = Some(node.to_string());
    spec.restart_policy = Some("Never".into());
    spec.termination_grace_period_seconds = Some(1);
    let c = &mut spec.containers[0];
    c.image = Some(env("TESSERA_E2E_IMAGE").unwrap_or_else(|| "local/app:1".into()));
    c.image_pull_policy = Some("Never".into());
    pod
}

async fn running(pods: &Api<Pod>, name: &str) {
    tokio::time::timeout(
        SLOW,
        await_condition(pods.clone(), name, conditions::is_pod_running()),
    )
    .await
    .unwrap_or_else(|_| panic!("pod {name} running in time"))
    .unwrap();
}

async fn allocatable(client: &kube::Client, node: &str, want: &str) {
    let nodes: Api<KubeNode> = Api::all(client.clone());
    let want = want.to_string();
    let cond = move |n: Option<&KubeNode>| {
        n.and_then(|n| n.status.as_ref())
            .and_then(|s| s.allocatable.as_ref())
            .and_then(|a| a.get(keys::RESOURCE_GPU))
            .is_some_and(|q| q.0 == want)
    };
    tokio::time::timeout(SLOW, await_condition(nodes, node, cond))
        .await
        .expect("node allocatable in time")
        .unwrap();
}

fn assigned(pod: &Pod) -> String {
    let text = &pod.metadata.annotations.as_ref().unwrap()[keys::ANNOTATION_GPU_ASSIGNMENT];
    decode_assignment(text).unwrap().containers[0].gpus[0]
        .uuid
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_device_plugin_on_a_real_kubelet() {
    let Some(kubeconfig) = env("TESSERA_E2E_KUBECONFIG") else {
        println!("skipping device plugin e2e: TESSERA_E2E_KUBECONFIG is not set");
        return;
    };
    let client = client(&kubeconfig).await;
    let node_name = ready_node(&client).await;
    let stamp = jiff::Timestamp::now();
    let ns_name = format!("tessera-e2e-dp-{}", stamp.as_second());
    let node = Node::two_gpus();
    let mut config = node.real_kubelet_config(&node_name, &ns_name);
    config.recover_after = Duration::from_secs(30);
    config.reconcile_every = Duration::from_secs(1);
    let pod_resources = PathBuf::from(
        env("TESSERA_E2E_POD_RESOURCES_SOCKET")
            .unwrap_or_else(|| "/var/lib/kubelet/pod-resources/kubelet.sock".into()),
    );
    config.pod_resources_socket = Some(pod_resources.clone());

    let plugin = OnCluster::start(client.clone(), &node_name, config).await;
    let metrics = &plugin.metrics;

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
    let t0 = std::time::Instant::now();
    allocatable(&client, &node_name, "8").await;
    println!(
        "registered: node {node_name} allocatable tessera.dev/gpu=8 after {:?}",
        t0.elapsed()
    );

    // One pod: exactly the env of its assignment, bind-phase allocated.
    let mut one = pod(&node_name, "one", &stamp.to_string(), &uuid(1));
    one.metadata.namespace = Some(ns_name.clone());
    pods.create(&PostParams::default(), &one).await.unwrap();
    running(&pods, "one").await;
    let env_gpu = tessera_tests::e2e::container_env(&pods, "one", "NVIDIA_VISIBLE_DEVICES").await;
    let mem =
        tessera_tests::e2e::container_env(&pods, "one", "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT").await;
    let pct =
        tessera_tests::e2e::container_env(&pods, "one", "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE").await;
    println!(
        "pod one: NVIDIA_VISIBLE_DEVICES={env_gpu:?} CUDA_MPS_PINNED_DEVICE_MEM_LIMIT={mem:?} CUDA_MPS_ACTIVE_THREAD_PERCENTAGE={pct:?}"
    );
    assert_eq!(env_gpu, Some(uuid(1)));
    assert_eq!(mem.as_deref(), Some("0=4096M"));
    assert_eq!(pct.as_deref(), Some("25"));
    let got = pods.get("one").await.unwrap();
    assert_eq!(
        got.metadata.annotations.as_ref().unwrap()[keys::ANNOTATION_BIND_PHASE],
        keys::BIND_PHASE_ALLOCATED
    );

    // Two same-size pods pending at once, assigned different GPUs.
    if pod_resources.exists() {
        let older = (stamp + jiff::SignedDuration::from_secs(1)).to_string();
        let newer = (stamp + jiff::SignedDuration::from_secs(2)).to_string();
        let mut a = pod(&node_name, "twin-a", &older, &uuid(0));
        let mut b = pod(&node_name, "twin-b", &newer, &uuid(1));
        a.metadata.namespace = Some(ns_name.clone());
        b.metadata.namespace = Some(ns_name.clone());
        let post = PostParams::default();
        let (ra, rb) = tokio::join!(pods.create(&post, &b), pods.create(&post, &a));
        ra.unwrap();
        rb.unwrap();
        running(&pods, "twin-a").await;
        running(&pods, "twin-b").await;
        for name in ["twin-a", "twin-b"] {
            let real = tessera_tests::e2e::container_env(&pods, name, "NVIDIA_VISIBLE_DEVICES")
                .await
                .unwrap();
            let pods2 = pods.clone();
            let want = real.clone();
            let agrees = move |p: Option<&Pod>| p.is_some_and(|p| assigned(p) == want);
            tokio::time::timeout(SLOW, await_condition(pods2, name, agrees))
                .await
                .unwrap_or_else(|_| {
                    panic!("{name}: gpu-assignment agrees with its real GPU {real} in time")
                })
                .unwrap();
            println!("pod {name}: runs on {real}; gpu-assignment agrees");
        }
        println!(
            "corrections counted: {}",
            metric(
                &plugin.registry,
                "tessera_device_plugin_assignment_corrections_total"
            )
        );
    } else {
        println!(
            "skipping the two-pod reconciliation: no PodResources socket at {}",
            pod_resources.display()
        );
    }

    // Kubelet restart: capacity back, running pods untouched.
    if let Some(cmd) = env(tessera_tests::e2e::KUBELET_RESTART_ENV) {
        let before = pods.get("one").await.unwrap();
        let registered = metrics.registrations.get();
        tessera_tests::e2e::restart_kubelet(&cmd);
        let t = std::time::Instant::now();
        // The new kubelet deleted our socket: the plugin must register with it again...
        while metrics.registrations.get() == registered {
            assert!(
                t.elapsed() < SLOW,
                "no re-registration after the kubelet restart"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let reregistered = t.elapsed();
        // ...and the new kubelet must report the full capacity in a status it wrote after the
        // restart (a stale status would show the old figure).
        // Heartbeats are written in whole seconds: a status of the restart's own second counts.
        let restarted = k8s_openapi::jiff::Timestamp::now() - t.elapsed();
        let restarted_at = k8s_openapi::jiff::Timestamp::from_second(restarted.as_second())
            .expect("a time in range");
        let nodes: Api<KubeNode> = Api::all(client.clone());
        let fresh = move |n: Option<&KubeNode>| {
            let Some(status) = n.and_then(|n| n.status.as_ref()) else {
                return false;
            };
            let beat_after = status.conditions.iter().flatten().any(|c| {
                c.type_ == "Ready"
                    && c.last_heartbeat_time
                        .as_ref()
                        .is_some_and(|b| b.0 >= restarted_at)
            });
            let gpus = status
                .allocatable
                .as_ref()
                .and_then(|a| a.get(keys::RESOURCE_GPU))
                .is_some_and(|q| q.0 == "8");
            beat_after && gpus
        };
        tokio::time::timeout(SLOW, await_condition(nodes, &node_name, fresh))
            .await
            .expect("the restarted kubelet reports the plugin's capacity in time")
            .unwrap();
        println!(
            "kubelet restarted: re-registered after {reregistered:?}; the new kubelet reported tessera.dev/gpu=8 after {:?}",
            t.elapsed()
        );
        let after = pods.get("one").await.unwrap();
        assert_eq!(after.metadata.uid, before.metadata.uid);
        let restarts = |p: &Pod| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .map(|c| c[0].restart_count)
        };
        assert_eq!(restarts(&after), restarts(&before));
        assert_eq!(
            after
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .as_deref(),
            Some("Running")
        );
    } else {
        println!("skipping the kubelet restart check: TESSERA_E2E_KUBELET_RESTART is not set");
    }

    namespaces
        .delete(&ns_name, &DeleteParams::default())
        .await
        .unwrap();
    plugin.stop().await;
}

fn metric(registry: &prometheus_client::registry::Registry, name: &str) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
        .unwrap_or_default()
}
