//! Claim-bearing pods placed by the real kube-scheduler with the shipped profile and an
//! in-process extender that watches the DRA objects (issue 32, part 4), against a real
//! apiserver. Needs `TESSERA_E2E_KUBECONFIG` and `TESSERA_E2E_KUBE_SCHEDULER`; skipped, saying
//! so, when either is unset. Only fake nodes (no kubelet): the test publishes their
//! ResourceSlices in the driver's shape (`tessera_dra_plugin`'s own `resource_slice`) and makes
//! the `gpu.tessera.dev` DeviceClass if it is absent (removing it only then).
//!
//! Nodes A and B have one 16 GiB GPU with live MPS, C one without (tainted `mps-not-ready`). A
//! share of 12 GiB / 75% pinned to A takes half of A's CPU and leaves a 4 GiB / 25% remnant no
//! share of that size could use. The next share, 4 GiB / 25%, may go to A or B: kube-scheduler
//! alone (a second scheduler, same profile without the extender) sends it to B, the emptier node
//! by CPU; with the extender (default policy, fragmentation) it fills A's remnant, and the real
//! allocator writes its allocation there. A share that tolerates the taint, allowed only on C,
//! would be allocated by kube-scheduler alone; the extender refuses it (shares only where MPS
//! enforces them) and it stays Pending with that reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::resource::v1::{
    DeviceClass, ResourceClaim, ResourceClaimTemplate, ResourceSlice,
};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use serde_yaml_ng::Value as Yaml;
use tessera_core::inventory::GpuInfo;
use tessera_core::plugin::mps::{MpsStatus, STATUS_VERSION};
use tessera_dra_plugin::decide::slice::{NodeGpus, resource_slice, slice_name};
use tessera_dra_plugin::names::{DRIVER, TAINT_MPS_NOT_READY};
use tessera_extender::ExtenderState;
use tessera_tests::cluster::Harness;
use tessera_tests::e2e::{self, KillOnDrop};
use tessera_tests::scheduler::{scheduler_config, start_scheduler};

const WAIT: Duration = Duration::from_secs(90);

/// Publishes node `node`'s slice: one 16 GiB GPU, its MPS daemon live or not.
async fn publish_slice(client: &Client, node: &str, mps_live: bool) {
    let uid = Api::<Node>::all(client.clone())
        .get(node)
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let uuid = format!("GPU-{node}-0");
    let gpus = vec![GpuInfo {
        index: 0,
        uuid: uuid.clone(),
        model: "Tesla-T4".into(),
        memory_mib: 16384,
        healthy: true,
        mig: false,
        mps: true,
        isolation: Default::default(),
    }];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let live = MpsStatus {
        version: STATUS_VERSION.into(),
        gpus: vec![uuid],
        multi_user: true,
        heartbeat: now,
    };
    let gpus = NodeGpus {
        node: node.into(),
        node_uid: uid,
        gpus,
        driver_version: None,
    };
    let slice = resource_slice(&gpus, mps_live.then_some(&live), 1);
    let slices: Api<ResourceSlice> = Api::all(client.clone());
    slices.create(&PostParams::default(), &slice).await.unwrap();
}

/// The DeviceClass, made if absent; true when this test made it.
async fn ensure_device_class(client: &Client) -> bool {
    let classes: Api<DeviceClass> = Api::all(client.clone());
    if classes.get_opt(DRIVER).await.unwrap().is_some() {
        return false;
    }
    let class: DeviceClass = serde_json::from_value(json!({
        "metadata": {"name": DRIVER},
        "spec": {"selectors": [{"cel": {"expression": format!("device.driver == \"{DRIVER}\"")}}]}
    }))
    .unwrap();
    // Another test may have made it meanwhile: then it is theirs.
    classes.create(&PostParams::default(), &class).await.is_ok()
}

/// Removes the slices, and the DeviceClass when this test made it (the nodes, pods and
/// namespace go with the harness).
struct Cleanup {
    kubeconfig: std::path::PathBuf,
    slices: Vec<String>,
    made_class: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (slices, made_class) = (self.slices.clone(), self.made_class);
        e2e::cleanup_blocking(self.kubeconfig.clone(), move |client| async move {
            let api: Api<ResourceSlice> = Api::all(client.clone());
            for s in &slices {
                let _ = api.delete(s, &DeleteParams::default()).await;
            }
            if made_class {
                let classes: Api<DeviceClass> = Api::all(client);
                let _ = classes.delete(DRIVER, &DeleteParams::default()).await;
            }
        });
    }
}

/// A template asking `memory` and `compute` of one GPU; `tolerant` also tolerates
/// `mps-not-ready`.
async fn create_template(h: &Harness, name: &str, memory: &str, compute: &str, tolerant: bool) {
    let tolerations = match tolerant {
        true => json!([{"key": TAINT_MPS_NOT_READY, "operator": "Exists"}]),
        false => json!(null),
    };
    let t: ResourceClaimTemplate = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": {
            "deviceClassName": DRIVER, "tolerations": tolerations,
            "capacity": {"requests": {"memory": memory, "compute": compute}}}}]}}}
    }))
    .unwrap();
    let api: Api<ResourceClaimTemplate> = Api::namespaced(h.client.clone(), &h.ns);
    api.create(&PostParams::default(), &t).await.unwrap();
}

/// A pod of `scheduler` naming `template`, asking `cpu`, allowed only on `nodes`.
async fn create_claim_pod(
    h: &Harness,
    scheduler: &str,
    name: &str,
    template: &str,
    cpu: &str,
    nodes: &[&String],
) {
    let terms: Vec<_> = nodes
        .iter()
        .map(
            |n| json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": [n]}]}),
        )
        .collect();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "schedulerName": scheduler,
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": terms}}},
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"},
                            {"key": "node.kubernetes.io/unreachable", "operator": "Exists"}],
            "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": template}],
            "containers": [{"name": "main", "image": "local/app:1", "imagePullPolicy": "Never",
                            "resources": {"requests": {"cpu": cpu}, "claims": [{"name": "gpu"}]}}]
        }
    }))
    .unwrap();
    h.pods().create(&PostParams::default(), &pod).await.unwrap();
}

/// The node pod `name` is bound to, and the pool and device its claim was allocated, once both
/// are there.
async fn placed(h: &Harness, name: &str, logs: &[&Path]) -> (String, String, String) {
    let (pods, claims) = (
        h.pods(),
        Api::<ResourceClaim>::namespaced(h.client.clone(), &h.ns),
    );
    let found = e2e::wait_for(&format!("{name} bound and allocated"), WAIT, || {
        let (pods, claims) = (pods.clone(), claims.clone());
        async move {
            let pod = pods.get(name).await.ok()?;
            let node = pod.spec?.node_name?;
            let status = pod.status?.resource_claim_statuses?;
            let claim = claims
                .get(status.first()?.resource_claim_name.as_ref()?)
                .await
                .ok()?;
            let results = claim.status?.allocation?.devices?.results?;
            let r = results.first()?;
            Some((node, r.pool.clone(), r.device.clone()))
        }
    })
    .await;
    found.unwrap_or_else(|e| panic!("{e}\n{}", dump(logs)))
}

fn dump(logs: &[&Path]) -> String {
    logs.iter()
        .map(|l| {
            let text = std::fs::read_to_string(l).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            format!(
                "--- {} ---\n{}",
                l.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect()
}

/// Waits until the extender's DRA ledger shows `core_free` thousandths free on `node`'s GPU.
async fn ledger_shows(state: &Arc<ExtenderState>, node: &str, core_free: u32) {
    let free = || {
        state
            .dra()
            .read()
            .ledger()
            .node(node)
            .map(|n| n.gpus[0].core_free)
    };
    let seen = e2e::wait_for("the extender's DRA ledger", WAIT, || {
        let now = free();
        async move { (now == Some(core_free)).then_some(()) }
    })
    .await;
    if seen.is_err() {
        panic!(
            "the extender's ledger shows {:?} free on {node}, not {core_free}",
            free()
        );
    }
}

/// kube-scheduler with the shipped profile minus the extender, for pods of `scheduler`.
fn plain_config(kubeconfig: &Path, scheduler: &str) -> String {
    let unused: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let text = scheduler_config(kubeconfig, unused, scheduler);
    let mut config: Yaml = serde_yaml_ng::from_str(&text).unwrap();
    config.as_mapping_mut().unwrap().remove("extenders");
    serde_yaml_ng::to_string(&config).unwrap()
}

fn start(
    binary: &Path,
    dir: &Path,
    name: &str,
    config: String,
) -> (KillOnDrop, std::path::PathBuf) {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, config).unwrap();
    let log = dir.join(format!("{name}.log"));
    (start_scheduler(binary, &path, &log), log)
}

#[tokio::test]
async fn claim_pods_land_where_tesseras_policy_says_and_an_unsafe_share_stays_pending() {
    let test = "claim_pods_land_where_tesseras_policy_says";
    let (Some(kubeconfig), Some(binary)) = (e2e::kubeconfig(test), e2e::kube_scheduler(test))
    else {
        return;
    };
    let h = Harness::start_with(&kubeconfig, 3, 1).await;
    let (a, b, c) = (&h.nodes[0], &h.nodes[1], &h.nodes[2]);
    let cleanup = Cleanup {
        kubeconfig: kubeconfig.clone(),
        slices: h.nodes.iter().map(|n| slice_name(n)).collect(),
        made_class: ensure_device_class(&h.client).await,
    };
    for (node, live) in [(a, true), (b, true), (c, false)] {
        publish_slice(&h.client, node, live).await;
    }
    create_template(&h, "big", "12Gi", "75", false).await;
    create_template(&h, "share", "4Gi", "25", false).await;
    create_template(&h, "tolerant", "4Gi", "25", true).await;
    let (state, addr, watching) = h.extender().await;
    let dir = tempfile::tempdir().unwrap();
    let with = scheduler_config(&kubeconfig, addr, &h.scheduler);
    let (_with, with_log) = start(&binary, dir.path(), "with-extender", with);
    let plain_name = format!("{}-plain", h.scheduler);
    let (_plain, plain_log) = start(
        &binary,
        dir.path(),
        "plain",
        plain_config(&kubeconfig, &plain_name),
    );
    let logs = [with_log.as_path(), plain_log.as_path()];
    let gpu_core_free = |node: &str| {
        state
            .dra()
            .read()
            .ledger()
            .node(node)
            .map(|n| n.gpus[0].core_free)
    };
    // The first share, 12 GiB / 75% pinned to A, with half of A's CPU.
    create_claim_pod(&h, &h.scheduler, "first", "big", "8", &[a]).await;
    let first = placed(&h, "first", &logs).await;
    assert_eq!(first, (a.clone(), a.clone(), "gpu-0".to_string()));
    ledger_shows(&state, a, 250).await;

    // kube-scheduler alone sends the next share to B, the node with more CPU free.
    create_claim_pod(&h, &plain_name, "alone", "share", "1", &[a, b]).await;
    let alone = placed(&h, "alone", &logs).await;
    assert_eq!(alone.0, *b, "kube-scheduler alone: {alone:?}");
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    ledger_shows(&state, b, 750).await;
    h.pods().delete("alone", &now).await.unwrap();
    ledger_shows(&state, b, 1000).await;
    assert_eq!(gpu_core_free(a), Some(250));

    // With the extender (the default policy, fragmentation) the same share fills the remnant
    // of A's GPU, which no share of the mix could use, and the allocator writes it there.
    create_claim_pod(&h, &h.scheduler, "second", "share", "1", &[a, b]).await;
    let second = placed(&h, "second", &logs).await;
    assert_eq!(
        second,
        (a.clone(), a.clone(), "gpu-0".to_string()),
        "{}",
        dump(&logs)
    );
    ledger_shows(&state, a, 0).await;
    let bound = h.pods().get("second").await.unwrap();
    let annotations = bound.metadata.annotations.unwrap_or_default();
    assert!(
        !annotations.contains_key(tessera_core::keys::ANNOTATION_GPU_ASSIGNMENT),
        "a claim pod carries no device-plugin assignment: {annotations:?}"
    );

    // A share tolerating the missing isolation, allowed only on C: the extender refuses it.
    create_claim_pod(&h, &h.scheduler, "unsafe", "tolerant", "1", &[c]).await;
    let pods = h.pods();
    let why = e2e::wait_for("unsafe to be reported unschedulable", WAIT, || {
        let pods = pods.clone();
        async move {
            let pod = pods.get("unsafe").await.ok()?;
            let conditions = pod.status?.conditions?;
            let scheduled = conditions.into_iter().find(|c| c.type_ == "PodScheduled")?;
            (scheduled.status == "False").then_some(scheduled.message?)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", dump(&logs)));
    assert!(
        why.contains("no live MPS isolation, whole GPUs only"),
        "{why}"
    );
    assert!(why.contains(&format!("{c}/gpu-0")), "{why}");
    let unsafe_pod = h.pods().get("unsafe").await.unwrap();
    assert!(unsafe_pod.spec.unwrap().node_name.is_none());
    assert_eq!(gpu_core_free(c), Some(1000));
    eprintln!("kube-scheduler alone: {alone:?}; with the extender: {second:?}; unsafe: {why}");

    watching.abort();
    drop(cleanup);
}
