//! The end-to-end suite: Tessera's real binaries against a real control plane, from admission to
//! placement (and, on a real kubelet, to a running container that sees its GPU share).
//!
//! Needs `TESSERA_E2E_KUBECONFIG` (cluster-admin) and `TESSERA_E2E_KUBE_SCHEDULER` (a
//! kube-scheduler binary); prints a skip line when either is unset. The device plugin part also
//! needs `TESSERA_E2E_NODE`, `TESSERA_E2E_PLUGIN_DIR` and `TESSERA_E2E_POD_RESOURCES_SOCKET` and
//! must run on that node as root. The trace part reads `../shared/data/gpu-trace-2023/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod suite;
mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use tessera_core::keys;
use tessera_sim::trace::{TracePod, parse_pods};
use tessera_tests::e2e;
use tessera_tests::process::{metric, output_ok};

use suite::audit::{assignment, audit};
use suite::pods::{self, Place};
use suite::{Suite, repo_file};

/// Trace pods submitted at once.
const TRACE_PODS: usize = 300;
const SLOW: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_suite() {
    let test = "e2e_suite";
    let (Some(kubeconfig), Some(binary)) = (e2e::kubeconfig(test), e2e::kube_scheduler(test))
    else {
        return;
    };
    let mut s = Suite::start(&kubeconfig, &binary).await;
    zookeeper_follows_scale(&s).await;
    ai_pods_share_without_overcommit(&s).await;
    let trace = trace_pods_survive_leader_loss_and_a_rolling_restart(&mut s).await;
    deleting_pods_frees_their_shares(&s, &trace).await;
    if s.real_node.is_some() {
        admission_to_running_container(&s).await;
    }
    let report = audit(&s.pods(), &Api::all(s.h.client.clone())).await;
    assert!(report.faults.is_empty(), "{:?}", report.faults);
    println!(
        "end: {} pods bound, {} with GPU assignments on {} GPUs, 0 over-committed",
        report.bound,
        report.assigned,
        report.per_gpu.len()
    );
    print_inspect(&s).await;
}

/// Pod names bound to a node, by node, among the pods `select` keeps.
async fn placed(pods: &Api<Pod>, selector: &str) -> BTreeMap<String, String> {
    let list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap();
    list.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| Some((p.metadata.name?, p.spec?.node_name?)))
        .collect()
}

fn env_of(pod: &Pod, name: &str) -> Option<String> {
    pod.spec.as_ref()?.containers[0]
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)?
        .value
        .clone()
}

/// A ZooKeeper StatefulSet written with no knowledge of Tessera: the webhook gives each member
/// its identity and the Tessera scheduler; the peers ConfigMap follows 3 → 5 → 3; members land
/// on different nodes, and a quorum never sits on one node or zone.
async fn zookeeper_follows_scale(s: &Suite) {
    let t0 = Instant::now();
    let ns = &s.h.ns;
    let services: Api<Service> = Api::namespaced(s.h.client.clone(), ns);
    services
        .create(
            &PostParams::default(),
            &pods::headless_service("zk-hs", "zk"),
        )
        .await
        .unwrap();
    let sets: Api<StatefulSet> = Api::namespaced(s.h.client.clone(), ns);
    sets.create(
        &PostParams::default(),
        &pods::zookeeper("zk", "zk-hs", 3, ns),
    )
    .await
    .unwrap();
    let pods = s.pods();
    let nodes: Api<Node> = Api::all(s.h.client.clone());
    let zones: HashMap<String, String> = nodes
        .list(&ListParams::default().labels(&format!("{}={ns}", pods::SUITE_LABEL)))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| {
            let zone = n.metadata.labels.as_ref().unwrap()[keys::LABEL_ZONE].clone();
            (n.metadata.name.unwrap(), zone)
        })
        .collect();
    let configmaps: Api<ConfigMap> = Api::namespaced(s.h.client.clone(), ns);
    for replicas in [3usize, 5, 3] {
        let patch = serde_json::json!({"spec": {"replicas": replicas}});
        sets.patch("zk", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        let want = replicas.to_string();
        let peers = e2e::wait_for("zk-peers to follow the scale", e2e::SYNC_LIMIT, || {
            let (configmaps, want) = (configmaps.clone(), want.clone());
            async move {
                let cm = configmaps.get("zk-peers").await.ok()?;
                let data = cm.data?;
                (data.get("replicas") == Some(&want)).then_some(data)
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
        let hosts = &peers["hosts"];
        assert_eq!(hosts.lines().count(), replicas, "{hosts}");
        let members = e2e::wait_for("the members bound", SLOW, || {
            let pods = pods.clone();
            async move {
                let placed = placed(&pods, "app=zk").await;
                let live = (0..replicas).all(|i| placed.contains_key(&format!("zk-{i}")));
                live.then_some(placed)
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
        let mut per_node: HashMap<&str, usize> = HashMap::new();
        let mut per_zone: HashMap<&str, usize> = HashMap::new();
        for i in 0..replicas {
            let name = format!("zk-{i}");
            let pod = pods.get(&name).await.unwrap();
            let spec = pod.spec.as_ref().unwrap();
            assert_eq!(spec.scheduler_name.as_deref(), Some(keys::SCHEDULER_NAME));
            assert_eq!(env_of(&pod, "ZOO_MY_ID"), Some((i + 1).to_string()));
            let servers = env_of(&pod, "ZOO_SERVERS").unwrap_or_default();
            assert!(
                servers.contains(&format!("server.1=zk-0.zk-hs.{ns}.svc.cluster.local:2888")),
                "{name}: ZOO_SERVERS={servers}"
            );
            let node = &members[&name];
            *per_node.entry(node).or_default() += 1;
            *per_zone.entry(&zones[node]).or_default() += 1;
        }
        // Below half of the ensemble on any node and any zone.
        for (place, n) in per_node.iter().chain(per_zone.iter()) {
            assert!(2 * n < replicas, "{n} of {replicas} members on {place}");
        }
        println!(
            "zookeeper at {replicas}: peers ConfigMap lists {} hosts; members on {} nodes in {} \
             zones; ZOO_MY_ID 1..{replicas} ({:.1?})",
            hosts.lines().count(),
            per_node.len(),
            per_zone.len(),
            t0.elapsed()
        );
    }
}

/// Pods written for gpushare (`aliyun.com/gpu-mem` in GiB) are translated, sent to the Tessera
/// scheduler, and placed with assignments that never over-commit a GPU.
async fn ai_pods_share_without_overcommit(s: &Suite) {
    let t0 = Instant::now();
    let pods = s.pods();
    for i in 0..12 {
        let pod = pods::pod(
            &format!("ai-{i}"),
            &[("tessera.dev/gpu-sharing", "enabled"), ("app", "ai")],
            &[(keys::GPUSHARE_MEM, "7")],
            &[],
            &s.place(),
        );
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    let bound = e2e::wait_for("12 AI pods bound", SLOW, || {
        let pods = pods.clone();
        async move {
            let placed = placed(&pods, "app=ai").await;
            (placed.len() == 12).then_some(placed)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
    for name in bound.keys() {
        let pod = pods.get(name).await.unwrap();
        let limits = pod.spec.as_ref().unwrap().containers[0]
            .resources
            .as_ref()
            .and_then(|r| r.limits.clone())
            .unwrap_or_default();
        assert_eq!(
            limits.get(keys::RESOURCE_GPU_MEM).map(|q| q.0.as_str()),
            Some("7168"),
            "{name}: {limits:?}"
        );
        let a = assignment(&pod).unwrap_or_else(|| panic!("{name} has no gpu-assignment"));
        let mib: u64 = a.shares().map(|s| s.mem_mib).sum();
        assert_eq!(mib, 7168, "{name}: {a:?}");
    }
    let report = audit(&pods, &Api::all(s.h.client.clone())).await;
    assert!(report.faults.is_empty(), "{:?}", report.faults);
    println!(
        "ai: 12 gpushare pods (7 GiB) translated to 7168 MiB and bound on {} GPUs, 0 over-committed \
         ({:.1?})",
        report.per_gpu.len(),
        t0.elapsed()
    );
}

fn trace_sample() -> Vec<TracePod> {
    let path = repo_file("../shared/data/gpu-trace-2023/openb_pod_list_default.csv");
    let file = std::fs::File::open(&path)
        .unwrap_or_else(|e| panic!("the GPU trace at {}: {e}", path.display()));
    let mut pods = parse_pods(std::io::BufReader::new(file), "openb_pod_list_default.csv").unwrap();
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    pods.truncate(TRACE_PODS);
    pods
}

/// 300 pods of the production trace (the first by name) are submitted at once to two extender
/// replicas; while kube-scheduler places them the leader is killed with SIGKILL (and replaced),
/// then both replicas are replaced one at a time with SIGTERM, as a rolling update does. All
/// bind, each gets exactly its request, no GPU is over-committed, no GPU pod is bound without
/// its assignment, and the final leader holds exactly the bound shares with nothing reserved.
async fn trace_pods_survive_leader_loss_and_a_rolling_restart(s: &mut Suite) -> Vec<TracePod> {
    let t0 = Instant::now();
    let trace = trace_sample();
    let pods = s.pods();
    let creating = trace.iter().map(|t| {
        let pods = pods.clone();
        let pod = pods::trace_pod(t, &s.h.ns);
        async move { pods.create(&PostParams::default(), &pod).await.unwrap() }
    });
    let created: Vec<Pod> = futures::StreamExt::collect(futures::StreamExt::buffer_unordered(
        futures::stream::iter(creating),
        16,
    ))
    .await;
    let submitted = t0.elapsed();
    let by_name: HashMap<String, &TracePod> = trace
        .iter()
        .map(|t| (t.name.replace('_', "-"), t))
        .collect();
    // GPU pods go to the Tessera scheduler; CPU-only pods stay with the default one.
    for pod in &created {
        let name = pod.metadata.name.as_deref().unwrap();
        let want = match by_name[name].num_gpu {
            0 => "default-scheduler",
            _ => keys::SCHEDULER_NAME,
        };
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.scheduler_name.as_deref(), Some(want), "{name}");
    }
    let bound_at_least = |n: usize| {
        let pods = pods.clone();
        move || {
            let pods = pods.clone();
            async move {
                let placed = placed(&pods, "trace=openb").await;
                (placed.len() >= n).then_some(placed.len())
            }
        }
    };
    let before = e2e::wait_for("a first 60 trace pods bound", SLOW, bound_at_least(60))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
    let failover = s.kill_leader().await;
    let midway = e2e::wait_for("150 trace pods bound", SLOW, bound_at_least(150))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
    let rolling_gap = s.rolling_restart().await;
    let all = e2e::wait_for(
        "all trace pods bound",
        Duration::from_secs(240),
        bound_at_least(TRACE_PODS),
    )
    .await;
    if let Err(e) = all {
        let n = placed(&pods, "trace=openb").await.len();
        panic!("{e}: {n} of {TRACE_PODS} bound\n{}", s.logs());
    }
    let placed_in = t0.elapsed();

    // Each pod holds exactly what it asked for.
    let list = pods
        .list(&ListParams::default().labels("trace=openb"))
        .await
        .unwrap();
    for pod in &list.items {
        let name = pod.metadata.name.clone().unwrap();
        let t = by_name[&name];
        let shares: Vec<(String, u32)> = assignment(pod)
            .map(|a| a.shares().map(|s| (s.uuid.clone(), s.core_milli)).collect())
            .unwrap_or_default();
        if t.num_gpu == 0 {
            assert!(
                shares.is_empty(),
                "{name}: CPU-only but assigned {shares:?}"
            );
            continue;
        }
        assert_eq!(shares.len(), t.num_gpu as usize, "{name}: {shares:?}");
        let distinct: HashSet<&String> = shares.iter().map(|(u, _)| u).collect();
        assert_eq!(
            distinct.len(),
            shares.len(),
            "{name}: a GPU twice in {shares:?}"
        );
        assert!(
            shares.iter().all(|(_, milli)| *milli == t.gpu_milli),
            "{name}: wants {}‰ per GPU, got {shares:?}",
            t.gpu_milli
        );
    }
    let report = audit(&pods, &Api::all(s.h.client.clone())).await;
    assert!(report.faults.is_empty(), "{:?}", report.faults);
    // The restarted extender rebuilt exactly what the apiserver holds: every pod of its
    // scheduler in the cluster (not only this namespace's) bound with an assignment.
    let addr = s.extender_addr;
    let want = holding_pods(&s.h.client).await as f64;
    let counted = e2e::wait_for("the leader's counts", e2e::SYNC_LIMIT, || async move {
        let holding = metric(addr, "tessera_extender_holding_pods")?;
        let pending = metric(addr, "tessera_extender_pending_reservations")?;
        (holding == want && pending == 0.0).then_some(())
    })
    .await;
    if let Err(e) = counted {
        let holding = metric(addr, "tessera_extender_holding_pods");
        panic!("{e}: holds {holding:?}, the apiserver {want}\n{}", s.logs());
    }
    let milli: u32 = report.per_gpu.values().map(|h| h.core_milli).sum();
    println!(
        "trace: {TRACE_PODS} pods submitted through the webhook in {submitted:.1?}; leading \
         extender SIGKILLed after {before} were bound, standby leading after {failover:.1?}; \
         rolling restart of both replicas after {midway} were bound, longest without a leader \
         {rolling_gap:.1?}; all {TRACE_PODS} bound after {placed_in:.1?}; {} pods hold {:.1} GPUs \
         of compute on {} GPUs, none over-committed; the leader holds the same {} pods with 0 \
         reservations",
        report.assigned,
        f64::from(milli) / 1000.0,
        report.per_gpu.len(),
        report.assigned
    );
    trace
}

/// Pods of the Tessera scheduler, cluster-wide, bound with a `gpu-assignment`.
async fn holding_pods(client: &kube::Client) -> usize {
    let all: Api<Pod> = Api::all(client.clone());
    let selector = format!("spec.schedulerName={}", keys::SCHEDULER_NAME);
    let list = all
        .list(&ListParams::default().fields(&selector))
        .await
        .unwrap();
    list.items
        .iter()
        .filter(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_some()))
        .filter(|p| assignment(p).is_some())
        .count()
}

/// A pod asking for a whole 8-GPU node waits while other pods hold shares there, and binds once
/// the pods holding them are deleted.
async fn deleting_pods_frees_their_shares(s: &Suite, _trace: &[TracePod]) {
    let t0 = Instant::now();
    let pods = s.pods();
    let list = pods.list(&ListParams::default()).await.unwrap();
    let holders = |node: &str| -> Vec<String> {
        list.items
            .iter()
            .filter(|p| assignment(p).is_some_and(|a| a.node == node))
            .filter_map(|p| p.metadata.name.clone())
            .collect()
    };
    let node =
        s.h.nodes
            .iter()
            .max_by_key(|n| holders(n).len())
            .unwrap()
            .clone();
    let victims = holders(&node);
    assert!(!victims.is_empty(), "no trace pod holds a GPU anywhere");
    let whole = pods::pod(
        "whole-node",
        &[("tessera.dev/gpu-sharing", "enabled")],
        &[(keys::RESOURCE_GPU, "8"), (keys::RESOURCE_GPU_CORE, "100")],
        &[],
        &Place::Node(&node),
    );
    pods.create(&PostParams::default(), &whole).await.unwrap();
    // kube-scheduler tries it and the extender refuses: it stays pending.
    let refused = e2e::wait_for("the whole-node pod refused", e2e::SYNC_LIMIT, || {
        let pods = pods.clone();
        async move {
            let pod = pods.get("whole-node").await.ok()?;
            let conditions = pod.status?.conditions?;
            conditions
                .into_iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")?
                .message
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    for name in &victims {
        pods.delete(name, &now).await.unwrap();
    }
    let landed = e2e::wait_for("the whole-node pod bound", SLOW, || {
        let pods = pods.clone();
        async move {
            let pod = pods.get("whole-node").await.ok()?;
            let a = assignment(&pod)?;
            (pod.spec?.node_name? == a.node).then_some(a)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
    assert_eq!(landed.node, node);
    assert_eq!(landed.shares().count(), 8, "{landed:?}");
    println!(
        "delete: an 8-GPU pod pinned to {node} was refused (\"{}\"); after deleting the {} \
         pods holding shares there it bound to all 8 GPUs ({:.1?})",
        refused.chars().take(160).collect::<String>(),
        victims.len(),
        t0.elapsed()
    );
}

/// On the real node: a gpushare pod goes through the webhook, kube-scheduler and the extender,
/// the kubelet asks the device plugin, and the running container sees exactly its share.
async fn admission_to_running_container(s: &Suite) {
    let t0 = Instant::now();
    let real = s.real_node.as_ref().unwrap();
    let pods = s.pods();
    let pod = pods::pod(
        "gpu-app",
        &[("tessera.dev/gpu-sharing", "enabled")],
        &[(keys::GPUSHARE_MEM, "4")],
        &[],
        &Place::Node(&real.name),
    );
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let running = e2e::wait_for("gpu-app running", SLOW, || {
        let pods = pods.clone();
        async move {
            let pod = pods.get("gpu-app").await.ok()?;
            let phase = pod.status.as_ref()?.phase.clone()?;
            (phase == "Running").then_some(pod)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
    let a = assignment(&running).expect("gpu-app has a gpu-assignment");
    let share = a.shares().next().unwrap().clone();
    assert!(real.gpus.contains(&share.uuid), "{a:?}");
    let visible =
        tessera_tests::e2e::container_env(&pods, "gpu-app", "NVIDIA_VISIBLE_DEVICES").await;
    let limit =
        tessera_tests::e2e::container_env(&pods, "gpu-app", "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT")
            .await;
    assert_eq!(visible.as_deref(), Some(share.uuid.as_str()));
    assert_eq!(limit.as_deref(), Some("0=4096M"));
    let phase = e2e::wait_for("bind-phase allocated", e2e::SYNC_LIMIT, || {
        let pods = pods.clone();
        async move {
            let pod = pods.get("gpu-app").await.ok()?;
            let phase = pod
                .metadata
                .annotations?
                .get(keys::ANNOTATION_BIND_PHASE)?
                .clone();
            (phase == keys::BIND_PHASE_ALLOCATED).then_some(phase)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
    println!(
        "real node {}: gpu-app (aliyun.com/gpu-mem: 4) admitted, bound to {}, running with \
         NVIDIA_VISIBLE_DEVICES={} CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=4096M, bind-phase {phase} \
         ({:.1?})",
        real.name,
        share.uuid,
        share.uuid,
        t0.elapsed()
    );
}

/// `tessera inspect` on the suite's cluster: the real node and the fake node holding the most
/// shares.
async fn print_inspect(s: &Suite) {
    let list = s.pods().list(&ListParams::default()).await.unwrap();
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for a in list.items.iter().filter_map(assignment) {
        *per_node.entry(a.node).or_default() += a.shares().count();
    }
    let busiest =
        s.h.nodes
            .iter()
            .max_by_key(|n| per_node.get(*n).copied().unwrap_or(0));
    let mut nodes: Vec<&str> = busiest.map(String::as_str).into_iter().collect();
    if let Some(real) = &s.real_node {
        nodes.insert(0, &real.name);
    }
    for node in nodes {
        let tessera = std::path::Path::new(env!("CARGO_BIN_EXE_tessera"));
        let args = [
            "inspect".as_ref(),
            "--node".as_ref(),
            node.as_ref(),
            "--kubeconfig".as_ref(),
        ];
        let out = output_ok(
            tessera,
            args.into_iter().chain([s.h.kubeconfig.as_os_str()]),
        );
        println!(
            "$ tessera inspect --node {node}\n{}",
            String::from_utf8_lossy(&out)
        );
    }
}
