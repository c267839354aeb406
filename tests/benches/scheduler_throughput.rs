//! How much the extender costs kube-scheduler: the real kube-scheduler with the shipped profile
//! places pods on 500 fake GPU nodes of a real apiserver, first without the extender, then with
//! it for pods that ask for no GPU (pass-through) and for pods asking for GPU shares. Reports
//! pods bound per second for each, the whole machine's CPU per pod bound (from `/proc/stat`,
//! apiserver, etcd and kube-scheduler included), and the ratios; `--rounds N` (default 3) runs
//! the three in turn N times, so that a noisy stretch of a shared machine hits all alike, and
//! reports each run and the medians. Needs `TESSERA_E2E_KUBECONFIG` and
//! `TESSERA_E2E_KUBE_SCHEDULER`; says so and does nothing when either is unset.
//!
//! `cargo bench -p tessera-tests --bench scheduler_throughput -- [--rounds N]`
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

/// Busy CPU time of the whole machine so far, in clock ticks (`/proc/stat`: all but idle and
/// iowait); `None` where there is no `/proc/stat`.
fn busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = cpu
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let (idle, iowait) = (*fields.get(3)?, *fields.get(4)?);
    Some(fields.iter().take(8).sum::<u64>() - idle - iowait)
}

/// One run's figures.
#[derive(Clone, Copy)]
struct Measured {
    /// Pods bound per second, from the first bind to the last.
    rate: f64,
    /// Whole-machine CPU per pod bound, ms, from kube-scheduler's start to the last bind.
    cpu_ms: f64,
}

/// Creates `PODS` pods for `scheduler`, starts kube-scheduler, and measures the binding of them.
async fn run(
    h: &Harness,
    label: &str,
    scheduler: &str,
    yaml: String,
    limits: &[(&str, &str)],
) -> Measured {
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
    let ticks_before = busy_ticks();
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
    let ticks = busy_ticks().zip(ticks_before).map_or(0, |(a, b)| a - b);
    drop(scheduler_process);
    let (start, at_start) = first.unwrap();
    let rate = (PODS - at_start) as f64 / (last - start).as_secs_f64().max(0.2);
    // Clock ticks are 1/100 s on Linux (USER_HZ).
    let cpu_ms = ticks as f64 * 10.0 / PODS as f64;
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
    Measured { rate, cpu_ms }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// `--rounds N` from the bench's arguments (after `--`).
fn rounds() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(3)
        .max(1)
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
        let share = [
            (keys::RESOURCE_GPU, "1"),
            (keys::RESOURCE_GPU_MEM, "4000"),
            (keys::RESOURCE_GPU_CORE, "20"),
        ];
        let kinds = [
            ("without the extender", "plain", plain.as_str(), false, &[][..]),
            ("extender, pods without shares", "pass", h.scheduler.as_str(), true, &[][..]),
            ("extender, pods with GPU shares", "share", h.scheduler.as_str(), true, &share[..]),
        ];
        let mut results: Vec<Vec<Measured>> = vec![Vec::new(); kinds.len()];
        for round in 0..rounds() {
            for (i, (_, label, scheduler, with, limits)) in kinds.iter().enumerate() {
                let yaml = config(&h, addr, scheduler, *with);
                let m = run(&h, &format!("{label}{round}"), scheduler, yaml, limits).await;
                println!(
                    "round {round} {label:5} {:7.1} pods/s  {:5.1} ms CPU/pod",
                    m.rate, m.cpu_ms
                );
                results[i].push(m);
            }
        }
        println!(
            "kube-scheduler with the shipped profile, {NODES} nodes x 8 GPUs, {PODS} pods per run, medians of {} rounds:",
            results[0].len()
        );
        let base = median(results[0].iter().map(|m| m.rate).collect());
        for ((what, ..), runs) in kinds.iter().zip(&results) {
            let rate = median(runs.iter().map(|m| m.rate).collect());
            let cpu = median(runs.iter().map(|m| m.cpu_ms).collect());
            let range = runs.iter().map(|m| m.rate / base);
            let (lo, hi) = range.fold((f64::MAX, 0f64), |(l, h), r| (l.min(r), h.max(r)));
            println!(
                "  {what:31} {rate:7.1} pods/s  ({:.2}x, runs {lo:.2}-{hi:.2}x of the plain median)  {cpu:5.1} ms CPU/pod",
                rate / base
            );
        }
    });
}
