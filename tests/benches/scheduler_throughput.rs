//! How much the extender costs kube-scheduler: the real kube-scheduler with the shipped profile
//! places pods on 500 fake GPU nodes of a real apiserver, first without the extender, then with
//! it for pods that ask for no GPU (pass-through) and for pods asking for GPU shares. Reports
//! pods bound per second for each and the ratios. Needs `TESSERA_E2E_KUBECONFIG` and
//! `TESSERA_E2E_KUBE_SCHEDULER`; says so and does nothing when either is unset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark stops loudly

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use serde_yaml_ng::Value;
use tessera_core::keys;
use tessera_tests::cluster::Harness;
use tessera_tests::e2e;
use tessera_tests::scheduler::{scheduler_config, start_scheduler};

const NODES: usize = 500;
const PODS: usize = 1000;

/// The shipped profile with the scheduler's own API rate limit out of the way (the same for
/// every run), with or without the extender.
fn config(
    h: &Harness,
    extender: std::net::SocketAddr,
    scheduler: &str,
    with_extender: bool,
) -> String {
    let mut c: Value =
        serde_yaml_ng::from_str(&scheduler_config(&h.kubeconfig, extender, scheduler)).unwrap();
    c["clientConnection"]["qps"] = Value::from(2000);
    c["clientConnection"]["burst"] = Value::from(4000);
    if !with_extender && let Value::Mapping(m) = &mut c {
        m.remove("extenders");
    }
    serde_yaml_ng::to_string(&c).unwrap()
}

async fn bound(pods: &Api<Pod>, scheduler: &str) -> usize {
    let lp =
        ListParams::default().fields(&format!("spec.schedulerName={scheduler},spec.nodeName!="));
    pods.list_metadata(&lp).await.map_or(0, |l| l.items.len())
}

/// Creates `PODS` pods for `scheduler`, starts kube-scheduler, and returns pods/s from the first
/// bind to the last.
async fn run(
    h: &Harness,
    label: &str,
    scheduler: &str,
    yaml: String,
    limits: &[(&str, &str)],
) -> f64 {
    let names: Vec<String> = (0..PODS).map(|i| format!("{label}-{i}")).collect();
    let creating = names
        .iter()
        .map(|name| h.create_pod_for(scheduler, name, limits, &[]));
    futures::stream::iter(creating)
        .buffer_unordered(16)
        .collect::<Vec<Pod>>()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    let log = dir.path().join("kube-scheduler.log");
    let binary = e2e::kube_scheduler("scheduler_throughput").unwrap();
    let scheduler_process = start_scheduler(&binary, &path, &log);
    let pods = h.pods();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut first: Option<(Instant, usize)> = None;
    let last = loop {
        let n = bound(&pods, scheduler).await;
        let now = Instant::now();
        if n > 0 && first.is_none() {
            first = Some((now, n));
        }
        if n == PODS {
            break now;
        }
        assert!(
            now < deadline,
            "{label}: only {n} of {PODS} bound after 300 s\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    drop(scheduler_process);
    let (start, at_start) = first.unwrap();
    let rate = (PODS - at_start) as f64 / (last - start).as_secs_f64().max(0.2);
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    let _ = pods.delete_collection(&now, &ListParams::default()).await;
    for _ in 0..300 {
        if pods
            .list_metadata(&ListParams::default())
            .await
            .map_or(0, |l| l.items.len())
            == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    rate
}

fn main() {
    let (Some(kubeconfig), Some(_)) = (
        e2e::kubeconfig("scheduler_throughput"),
        e2e::kube_scheduler("scheduler_throughput"),
    ) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let h = Harness::start_with(&kubeconfig, NODES, 8).await;
        let (_state, addr, _watching) = h.extender().await;
        let plain = format!("{}-noext", h.scheduler);
        let base = run(&h, "plain", &plain, config(&h, addr, &plain, false), &[]).await;
        let pass = run(
            &h,
            "pass",
            &h.scheduler,
            config(&h, addr, &h.scheduler, true),
            &[],
        )
        .await;
        let share = [
            (keys::RESOURCE_GPU, "1"),
            (keys::RESOURCE_GPU_MEM, "4000"),
            (keys::RESOURCE_GPU_CORE, "20"),
        ];
        let gpu = run(
            &h,
            "share",
            &h.scheduler,
            config(&h, addr, &h.scheduler, true),
            &share,
        )
        .await;
        println!(
            "kube-scheduler with the shipped profile, {NODES} nodes x 8 GPUs, {PODS} pods per run:"
        );
        println!("  without the extender            {base:7.1} pods/s");
        println!(
            "  extender, pods without shares   {pass:7.1} pods/s  ({:.2}x)",
            pass / base
        );
        println!(
            "  extender, pods with GPU shares  {gpu:7.1} pods/s  ({:.2}x)",
            gpu / base
        );
    });
}
