//! The extender's verbs at scale: 5,000 nodes × 8 GPUs with about 50,000 shares placed.
//! Reports filter and prioritize per call (NodeNames shape; criterion medians, then p50/p99 over
//! 200 calls), the resident memory the state adds, and the cost of parsing the `Nodes` shape
//! per node.

use std::time::Instant;

use criterion::{Criterion, criterion_group};
use tessera_core::affinity::Spread;
use tessera_core::decide::{self, View};
use tessera_core::frag::{FragCache, TypicalPod, TypicalPods};
use tessera_core::request::{ContainerDemand, GpuDemand, PodRequest};
use tessera_core::score::{Policy, ScoreContext};
use tessera_core::testing;
use tessera_extender::wire::ExtenderArgs;

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
    }
}

fn pod() -> PodRequest {
    let demand = GpuDemand {
        gpus: 1,
        mem_mib: 8192,
        mem_percent: 0,
        core_milli: 250,
    };
    PodRequest {
        containers: vec![ContainerDemand {
            container: "main".into(),
            demand,
        }],
        ..Default::default()
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
    let mut times: Vec<f64> = (0..200)
        .map(|_| {
            let t = Instant::now();
            run();
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

fn bench(c: &mut Criterion) {
    let before = rss_mib();
    let ledger = testing::busy_cluster(NODES, PODS_PER_NODE, 11);
    let mix = mix();
    let mut frag = FragCache::default();
    frag.refresh(&ledger, &mix);
    let after = rss_mib();
    let spread = Spread::default();
    let view = View {
        ledger: &ledger,
        spread: &spread,
        policy: Policy::Fragmentation,
        ctx: ScoreContext {
            mix: &mix,
            frag: Some(&frag),
        },
    };
    let names: Vec<String> = ledger.nodes().iter().map(|n| n.name.clone()).collect();
    let pod = pod();
    let passed = decide::filter(view, &pod, &names).passed;
    println!(
        "state: {} nodes, {} pods placed, resident memory added {:.0} MiB; {} nodes pass the filter",
        NODES,
        ledger.pod_count(),
        after - before,
        passed.len()
    );
    c.bench_function("filter_nodenames_5000x8_50k", |b| {
        b.iter(|| decide::filter(view, &pod, &names))
    });
    c.bench_function("prioritize_nodenames_5000x8_50k", |b| {
        b.iter(|| decide::prioritize(view, &pod, &passed))
    });
    percentiles("filter_nodenames_5000x8_50k", || {
        std::hint::black_box(decide::filter(view, &pod, &names));
    });
    percentiles("prioritize_nodenames_5000x8_50k", || {
        std::hint::black_box(decide::prioritize(view, &pod, &passed));
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

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
