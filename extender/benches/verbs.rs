//! The extender's verbs at scale: 5,000 nodes × 8 GPUs with about 50,000 shares placed.
//! Reports filter and prioritize per call as the server runs them (decode the NodeNames body,
//! decide, encode): cold for a request shape never seen, and warm — the steady state, where a
//! bind changed one node since the last request — as criterion medians and p50/p99 over 200
//! calls; the resident memory of the state and of the memo; and the `Nodes` shape's parse cost
//! per node.

#![allow(clippy::panic)] // a benchmark stops loudly on a bad fixture

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group};
use k8s_openapi::api::core::v1::Pod;
use tessera_core::decide::Memo;
use tessera_core::frag::{FragCache, TypicalPod, TypicalPods};
use tessera_core::request::GpuDemand;
use tessera_core::testing;
use tessera_extender::slim_pod::SlimPod;
use tessera_extender::wire::ExtenderArgs;
use tessera_extender::{BindFuture, BindTarget, Binder, Config, ExtenderState, filter, prioritize};

const NODES: usize = 5_000;
const PODS_PER_NODE: usize = 10;

fn mix() -> TypicalPods {
    let class = |milli: u32, weight| TypicalPod {
        cpu_milli: 0,
        demand: GpuDemand {
            gpus: 1,
            mem_mib: u64::from(milli) * 40,
            mem_percent: 0,
            core_milli: milli,
        },
        models: vec![],
        weight,
    };
    TypicalPods {
        classes: vec![
            class(100, 0.3),
            class(250, 0.4),
            class(500, 0.2),
            class(1000, 0.1),
        ],
        // The extender's mix has no host CPU per class (as `Cluster::refresh_mix` builds it).
        cpu_per_gpu_milli: None,
        refill: Default::default(),
    }
}

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1 << 20) as f64
}

fn percentiles(label: &str, mut run: impl FnMut()) {
    percentiles_after(label, || {}, |()| run());
}

/// p50/p99 of `run`, with `setup` before each call and not timed.
fn percentiles_after<S>(label: &str, mut setup: impl FnMut() -> S, mut run: impl FnMut(S)) {
    let mut times: Vec<f64> = (0..200)
        .map(|_| {
            let input = setup();
            let t = Instant::now();
            run(input);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "{label:<32} p50 {:.3} ms  p99 {:.3} ms  (200 calls)",
        times[100], times[198]
    );
}

fn nodes_shape_json(n: usize) -> String {
    let node = |i: usize| {
        serde_json::json!({
            "metadata": {"name": format!("node-{i}"), "uid": format!("uid-{i}"), "labels": {"kubernetes.io/hostname": format!("node-{i}"), "topology.kubernetes.io/zone": "zone-a"},
                         "annotations": {"tessera.dev/gpu-inventory-heartbeat": "2026-11-23T20:00:00Z"}},
            "spec": {},
            "status": {"capacity": {"cpu": "96", "memory": "512Gi", "pods": "110", "tessera.dev/gpu": "80"},
                       "allocatable": {"cpu": "96", "memory": "512Gi", "pods": "110", "tessera.dev/gpu": "80"},
                       "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-11-23T20:00:00Z", "lastTransitionTime": "2026-11-23T19:00:00Z", "reason": "KubeletReady", "message": "kubelet is posting ready status"}]}
        })
    };
    serde_json::json!({"Pod": {"metadata": {"name": "p", "namespace": "ml"}, "spec": {"containers": [{"name": "main"}]}}, "Nodes": {"metadata": {}, "items": (0..n).map(node).collect::<Vec<_>>()}, "NodeNames": null}).to_string()
}

struct NoBinds;

impl Binder for NoBinds {
    fn bind(&self, _: BindTarget) -> BindFuture<'_> {
        Box::pin(async { Err("benchmark".to_string()) })
    }
}

/// The filter/prioritize body kube-scheduler sends with `nodeCacheCapable: true`.
fn nodenames_body(names: &[String]) -> String {
    serde_json::json!({
        "Pod": {
            "metadata": {"name": "p", "namespace": "ml", "uid": "uid-p"},
            "spec": {"containers": [{"name": "main", "resources": {"limits": {
                "tessera.dev/gpu-mem": "8192", "tessera.dev/gpu-core": "25"}}}]}
        },
        "NodeNames": names,
        "Nodes": null
    })
    .to_string()
}

/// One verb as the server runs it: decode the body, decide, encode the answer.
fn filter_verb(state: &ExtenderState, body: &str) -> Vec<u8> {
    let args: ExtenderArgs = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}"));
    serde_json::to_vec(&filter::filter(state, args)).unwrap_or_default()
}

fn prioritize_verb(state: &ExtenderState, body: &str) -> Vec<u8> {
    let args: ExtenderArgs = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}"));
    serde_json::to_vec(&prioritize::prioritize(state, args)).unwrap_or_default()
}

/// What a bind does to the state between two requests: one node changes.
fn touch(state: &ExtenderState, round: usize) {
    state.update(|c| {
        let i = round * 7919 % c.ledger.nodes().len();
        let name = c.ledger.nodes()[i].name.clone();
        if let Some(node) = c.ledger.node_mut(&name) {
            let pod = format!("bench/touch-{round}");
            if node.gpus[0].mem_free_mib >= 1
                && node.gpus[0].core_free >= 1
                && node.gpus[0].slots_free >= 1
            {
                testing::hold(node, &pod, 0, 1, 1);
                node.release(&pod);
            } else {
                node.version = tessera_core::ledger::next_version();
            }
        }
    });
}

fn bench(c: &mut Criterion) {
    let before = rss_mib();
    let config = Config {
        reservation_timeout: Duration::from_secs(60),
        heartbeat_max_age: None,
        ..Config::default()
    };
    let state = ExtenderState::new(config, Arc::new(NoBinds));
    state.update(|c| {
        c.ledger = testing::busy_cluster(NODES, PODS_PER_NODE, 11);
        c.mix = mix();
    });
    let after = rss_mib();
    let names: Vec<String> = state
        .read()
        .ledger
        .nodes()
        .iter()
        .map(|n| n.name.clone())
        .collect();
    let all = nodenames_body(&names);
    let passed: Vec<String> = {
        let args: ExtenderArgs = serde_json::from_str(&all).unwrap_or_else(|e| panic!("{e}"));
        filter::filter(&state, args)
            .node_names
            .unwrap_or_default()
            .into_iter()
            .map(|n| n.into_owned())
            .collect()
    };
    let feasible = nodenames_body(&passed);
    println!(
        "state: {} nodes, {} pods placed, resident memory added {:.0} MiB; {} nodes pass the filter",
        NODES,
        state.read().ledger.pod_count(),
        after - before,
        passed.len()
    );

    // Cold: a request shape never seen (every node computed), then the memo's memory.
    let memo_before = rss_mib();
    percentiles("filter cold (new request shape)", || {
        *state.memo() = Memo::default();
        std::hint::black_box(filter_verb(&state, &all));
    });
    percentiles("prioritize cold (new request shape)", || {
        *state.memo() = Memo::default();
        std::hint::black_box(prioritize_verb(&state, &feasible));
    });
    filter_verb(&state, &all);
    prioritize_verb(&state, &feasible);
    println!(
        "memo for one request shape: {:.1} MiB",
        rss_mib() - memo_before
    );

    // Warm: the steady state, where a bind changed one node since the last request (the bind's
    // own cost is not timed).
    let mut round = 0;
    let mut next = || {
        round += 1;
        touch(&state, round);
    };
    c.bench_function("filter_nodenames_5000x8_50k", |b| {
        b.iter_batched(
            &mut next,
            |()| filter_verb(&state, &all),
            BatchSize::PerIteration,
        )
    });
    c.bench_function("prioritize_nodenames_5000x8_50k", |b| {
        b.iter_batched(
            &mut next,
            |()| prioritize_verb(&state, &feasible),
            BatchSize::PerIteration,
        )
    });
    percentiles_after("filter_nodenames_5000x8_50k", &mut next, |()| {
        std::hint::black_box(filter_verb(&state, &all));
    });
    percentiles_after("prioritize_nodenames_5000x8_50k", &mut next, |()| {
        std::hint::black_box(prioritize_verb(&state, &feasible));
    });
    // Where the warm time goes.
    let decode =
        || -> ExtenderArgs { serde_json::from_str(&all).unwrap_or_else(|e| panic!("{e}")) };
    percentiles("  of which: decode 5000 names", || {
        std::hint::black_box(decode());
    });
    percentiles_after("  of which: filter decision", decode, |args| {
        std::hint::black_box(filter::filter(&state, args));
    });
    let answer = filter::filter(&state, decode());
    percentiles("  of which: encode the filter answer", || {
        std::hint::black_box(serde_json::to_vec(&answer).unwrap_or_default());
    });
    percentiles_after("  of which: prioritize decision", decode, |args| {
        std::hint::black_box(prioritize::prioritize(&state, args));
    });
    // A watch event: one pod's share applied and released on one node, and the state brought
    // up to date for the next decision (what every pod event and bind costs under the lock).
    let mut event = 1_000_000;
    percentiles("watch event (one node changed, caches refreshed)", || {
        event += 1;
        touch(&state, event);
    });
    // For comparison: bringing the fragmentation cache up to date by walking every node, as
    // every event did before the ledger reported which nodes changed.
    let mut walked = FragCache::default();
    {
        let c = state.read();
        walked.refresh(&c.ledger, &c.mix);
    }
    let mut next_event = || {
        event += 1;
        touch(&state, event);
    };
    percentiles_after("  full-walk refresh instead", &mut next_event, |()| {
        let c = state.read();
        walked.refresh(&c.ledger, &c.mix);
    });
    // A pod with no GPU share and no group, as the tessera-scheduler profile may still send.
    let plain = serde_json::json!({
        "Pod": {"metadata": {"name": "web", "namespace": "ml", "uid": "uid-web"},
                "spec": {"containers": [{"name": "main"}]}},
        "NodeNames": names, "Nodes": null
    })
    .to_string();
    percentiles("filter pass-through (no share, no group)", || {
        std::hint::black_box(filter_verb(&state, &plain));
    });
    let body = nodes_shape_json(1_000);
    let t = Instant::now();
    let rounds = 5;
    for _ in 0..rounds {
        let args: Result<ExtenderArgs, _> = serde_json::from_str(&body);
        assert!(args.is_ok(), "bench body must parse");
        let _ = std::hint::black_box(args);
    }
    let per_node_us = t.elapsed().as_secs_f64() * 1e6 / (rounds * 1_000) as f64;
    println!(
        "Nodes shape: {:.1} KiB per node, parse {per_node_us:.2} µs per node",
        body.len() as f64 / 1024.0 / 1000.0
    );
}

/// The pod kube-scheduler sent in the captured filter request: what the verbs decode each call,
/// and (with its managed fields) about what the pod watch decodes per event.
fn captured_pod() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/extender/filter.nodenames.request.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let request: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    request["Pod"].to_string()
}

/// A pod decoded whole (`k8s_openapi::Pod`) against slim (`SlimPod`, what the extender now
/// decodes).
fn pod_decoding(c: &mut Criterion) {
    let pod = captured_pod();
    c.bench_function("pod_decode_whole", |b| {
        b.iter(|| serde_json::from_str::<Pod>(std::hint::black_box(&pod)).ok())
    });
    c.bench_function("pod_decode_slim", |b| {
        b.iter(|| serde_json::from_str::<SlimPod>(std::hint::black_box(&pod)).ok())
    });
}

criterion_group!(benches, bench, pod_decoding);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
