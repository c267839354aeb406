//! How much the extender costs kube-scheduler: the real kube-scheduler with the shipped profile
//! places pods on 500 fake GPU nodes of a real apiserver, first without the extender, then with
//! it for pods that ask for no GPU (pass-through) and for pods asking for GPU shares, and last
//! the same GPU pods without the extender (kube-scheduler's own cost of their extended
//! resources, placed by the device plugin's slots alone). Reports
//! pods bound per second for each, the whole machine's CPU per pod bound (from `/proc/stat`,
//! apiserver, etcd and kube-scheduler included), and the ratios; `--rounds N` (default 3) runs
//! the four in turn N times, so that a noisy stretch of a shared machine hits all alike, and
//! reports each run and the medians; `--only plain|pass|share|slots` runs one of them (for profiling).
//! kube-scheduler reaches the extender as shipped, over mutual TLS; `--http` over plain HTTP.
//! Needs `TESSERA_E2E_KUBECONFIG` and
//! `TESSERA_E2E_KUBE_SCHEDULER`; says so and does nothing when either is unset.
//!
//! `cargo bench -p tessera-tests --bench scheduler_throughput -- [--rounds N] [--only KIND] [--http]`
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
use tessera_tests::extender_mtls::ClientFiles;
use tessera_tests::scheduler::{scheduler_config, scheduler_config_mtls, start_scheduler};

const NODES: usize = 500;
const PODS: usize = 1000;

/// How kube-scheduler reaches the extender.
enum Reach {
    /// As shipped: HTTPS with this client pair (HTTP/2 by ALPN).
    MutualTls(ClientFiles),
    /// Plain HTTP/1.1 (`--http`).
    Http,
}

/// The shipped profile with the scheduler's own API rate limit out of the way (the same for
/// every run), with or without the extender.
fn config(
    h: &Harness,
    extender: std::net::SocketAddr,
    reach: &Reach,
    scheduler: &str,
    with_extender: bool,
) -> String {
    let text = match reach {
        Reach::MutualTls(files) => {
            scheduler_config_mtls(&h.kubeconfig, extender, scheduler, &files.dir)
        }
        Reach::Http => scheduler_config(&h.kubeconfig, extender, scheduler),
    };
    let mut c: Value = serde_yaml_ng::from_str(&text).unwrap();
    c["clientConnection"]["qps"] = Value::from(2000);
    c["clientConnection"]["burst"] = Value::from(4000);
    if !with_extender && let Value::Mapping(m) = &mut c {
        m.remove("extenders");
    }
    serde_yaml_ng::to_string(&c).unwrap()
}

async fn bound(pods: &Api<Pod>, scheduler: &str) -> usize {
    // Served from the apiserver's watch cache (resourceVersion 0), not etcd: the poll is the
    // bench's own load and should cost the machine as little as it can.
    let lp = ListParams::default()
        .match_any()
        .fields(&format!("spec.schedulerName={scheduler},spec.nodeName!="));
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

/// The processes whose CPU the report splits out, by `comm`; the rest of the machine (other
/// users' work included) is "other".
const PROCESSES: [&str; 5] = [
    "kube-apiserver",
    "etcd",
    "kube-scheduler",
    "kube-controller",
    "kubelet",
];

/// CPU time so far, in clock ticks, of the processes named in [`PROCESSES`] (each name summed
/// over its processes: the testbed's own kube-scheduler runs beside the bench's) and of this
/// process (the extender runs in it), last.
fn process_ticks() -> Vec<u64> {
    let mut ticks = vec![0; PROCESSES.len() + 1];
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return ticks;
    };
    for entry in dir.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ...`: comm may hold spaces, so split at the last parenthesis.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let slot = match PROCESSES.iter().position(|p| *p == comm) {
            Some(i) => i,
            None if pid == me => PROCESSES.len(),
            None => continue,
        };
        // utime and stime are fields 14 and 15; after the comm, 12 and 13 (from 0).
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let used: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
            .sum();
        ticks[slot] += used;
    }
    ticks
}

/// One run's figures.
#[derive(Clone)]
struct Measured {
    /// Pods bound per second, from the first bind to the last.
    rate: f64,
    /// Whole-machine CPU per pod bound, ms, from kube-scheduler's start to the last bind.
    cpu_ms: f64,
    /// The same split by process ([`PROCESSES`], then the bench with its extender), ms per pod.
    per_process_ms: Vec<f64>,
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
    let process_before = process_ticks();
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
    // Read before the bench's kube-scheduler exits, so its ticks are counted.
    let process_after = process_ticks();
    drop(scheduler_process);
    let (start, at_start) = first.unwrap();
    let rate = (PODS - at_start) as f64 / (last - start).as_secs_f64().max(0.2);
    // Clock ticks are 1/100 s on Linux (USER_HZ).
    let cpu_ms = ticks as f64 * 10.0 / PODS as f64;
    let per_process_ms = process_after
        .iter()
        .zip(&process_before)
        .map(|(a, b)| a.saturating_sub(*b) as f64 * 10.0 / PODS as f64)
        .collect();
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
    Measured {
        rate,
        cpu_ms,
        per_process_ms,
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        // A configuration left out with --only.
        return f64::NAN;
    }
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

/// `--only LABEL` (plain, pass or share) from the bench's arguments: that configuration alone,
/// for profiling one path.
fn only() -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == "--only")?;
    args.get(i + 1).cloned()
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
        // `--http`: the extender over plain HTTP/1.1, as the bench ran before it went as shipped.
        // The state and its watch are held for the bench's life.
        let (_state, addr, reach, _watching) = if std::env::args().any(|a| a == "--http") {
            let (state, addr, watching) = h.extender().await;
            (state, addr, Reach::Http, watching)
        } else {
            let (state, addr, files, watching) = h.extender_mtls().await;
            (state, addr, Reach::MutualTls(files), watching)
        };
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
            // The same pods placed by kube-scheduler alone (by the device plugin's slots): what
            // their extended resources cost kube-scheduler itself, without the extender.
            ("no extender, the same GPU pods", "slots", plain.as_str(), false, &share[..]),
        ];
        let mut results: Vec<Vec<Measured>> = vec![Vec::new(); kinds.len()];
        let only = only();
        for round in 0..rounds() {
            for (i, (_, label, scheduler, with, limits)) in kinds.iter().enumerate() {
                if only.as_deref().is_some_and(|o| o != *label) {
                    continue;
                }
                let yaml = config(&h, addr, &reach, scheduler, *with);
                let m = run(&h, &format!("{label}{round}"), scheduler, yaml, limits).await;
                println!(
                    "round {round} {label:5} {:7.1} pods/s  {:5.1} ms CPU/pod  ({})",
                    m.rate,
                    m.cpu_ms,
                    split(&m.per_process_ms, m.cpu_ms)
                );
                results[i].push(m);
            }
        }
        println!(
            "kube-scheduler with the shipped profile, {NODES} nodes x 8 GPUs, {PODS} pods per run, extender over {}, medians of {} rounds:",
            match reach {
                Reach::MutualTls(_) => "mutual TLS (as shipped)",
                Reach::Http => "plain HTTP (--http)",
            },
            rounds()
        );
        let base = median(results[0].iter().map(|m| m.rate).collect());
        for ((what, ..), runs) in kinds.iter().zip(&results) {
            if runs.is_empty() {
                continue;
            }
            let rate = median(runs.iter().map(|m| m.rate).collect());
            let cpu = median(runs.iter().map(|m| m.cpu_ms).collect());
            let range = runs.iter().map(|m| m.rate / base);
            let (lo, hi) = range.fold((f64::MAX, 0f64), |(l, h), r| (l.min(r), h.max(r)));
            if base.is_nan() {
                println!("  {what:31} {rate:7.1} pods/s  {cpu:5.1} ms CPU/pod");
            } else {
                println!(
                    "  {what:31} {rate:7.1} pods/s  ({:.2}x, runs {lo:.2}-{hi:.2}x of the plain median)  {cpu:5.1} ms CPU/pod",
                    rate / base
                );
            }
            let per_process: Vec<f64> = (0..=PROCESSES.len())
                .map(|i| median(runs.iter().map(|m| m.per_process_ms[i]).collect()))
                .collect();
            println!("  {:31} CPU/pod by process: {}", "", split(&per_process, cpu));
        }
    });
}

/// `kube-apiserver 20.1, etcd 3.2, ..., extender+bench 4.0, other 2.2` (ms per pod).
fn split(per_process: &[f64], total: f64) -> String {
    let names = PROCESSES.iter().copied().chain(["extender+bench"]);
    let mut parts: Vec<String> = names
        .zip(per_process)
        .map(|(name, ms)| format!("{name} {ms:.1}"))
        .collect();
    parts.push(format!(
        "other {:.1}",
        total - per_process.iter().sum::<f64>()
    ));
    parts.join(", ")
}
