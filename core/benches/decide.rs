//! One scheduling decision (filter + score of one pod against every node, pick the best) on a
//! cluster of 5,000 nodes × 8 GPUs with random partial occupancy, per served policy.
//! Criterion reports the median; the closing lines print p50 and p99 over 300 decisions.

use std::time::Instant;

use criterion::{Criterion, criterion_group};
use tessera_core::frag::{FragCache, TypicalPod, TypicalPods};
use tessera_core::ledger::{
    ClusterLedger, ContainerPlacement, Holding, HostCapacity, Placement, Share,
};
use tessera_core::request::{ContainerDemand, GpuDemand, PodRequest};
use tessera_core::rng::Rng;
use tessera_core::score::{self, Policy, ScoreContext};
use tessera_core::testing;

const NODES: usize = 5_000;
const POLICIES: [Policy; 3] = [Policy::Fragmentation, Policy::Binpack, Policy::Spread];

fn cluster() -> ClusterLedger {
    let mut ledger = ClusterLedger::new(10);
    let mut rng = Rng::new(7);
    for n in 0..NODES {
        let name = format!("node-{n}");
        let host = HostCapacity {
            cpu_milli: Some(96_000),
            mem_mib: Some(512 * 1024),
        };
        ledger.upsert_node(&name, None, &testing::gpus(&name, 8, "A100", 40960), host);
        for g in 0..8 {
            let core = [0, 0, 250, 500, 750, 1000][rng.below(6) as usize];
            if core == 0 {
                continue;
            }
            let share = Share {
                gpu: g,
                mem_mib: u64::from(core) * 40,
                core_milli: core,
            };
            let placement = Placement {
                init: Vec::new(),
                containers: vec![ContainerPlacement {
                    container: "c".into(),
                    shares: vec![share],
                }],
            };
            let holding = Holding {
                placement,
                cpu_milli: 2000,
                mem_mib: 4096,
                run_as: tessera_core::request::RunAs::Unstated,
            };
            let _ = ledger.apply_at(n, &format!("ns/p-{n}-{g}"), holding);
        }
    }
    ledger
}

fn mix() -> TypicalPods {
    let class = |cpu, gpus, milli, weight| TypicalPod {
        cpu_milli: cpu,
        demand: GpuDemand {
            gpus,
            mem_mib: u64::from(milli) * 40,
            mem_percent: 0,
            core_milli: milli,
        },
        models: vec![],
        weight,
    };
    TypicalPods {
        classes: vec![
            class(4000, 1, 250, 0.3),
            class(8000, 1, 500, 0.25),
            class(8000, 1, 1000, 0.25),
            class(32000, 4, 1000, 0.05),
            class(4000, 0, 0, 0.15),
        ],
        // Below the bench pod's 4 cores per GPU: the pod is CPU-heavy, the policy's costliest path.
        cpu_per_gpu_milli: Some(2000),
        refill: Default::default(),
    }
}

fn pod() -> PodRequest {
    PodRequest {
        containers: vec![ContainerDemand {
            container: "main".into(),
            demand: GpuDemand {
                gpus: 1,
                mem_mib: 12288,
                mem_percent: 0,
                core_milli: 300,
            },
        }],
        cpu_milli: 4000,
        mem_mib: 16384,
        ..Default::default()
    }
}

/// One decision: every node filtered and scored, the best kept.
fn decide(
    ledger: &ClusterLedger,
    pod: &PodRequest,
    policy: Policy,
    ctx: ScoreContext<'_>,
) -> Option<(usize, f64)> {
    let mut best: Option<(usize, f64)> = None;
    for (i, node) in ledger.nodes().iter().enumerate() {
        if let Some(s) = score::score_value(policy, node, pod, ctx)
            && best.is_none_or(|(_, b)| s > b)
        {
            best = Some((i, s));
        }
    }
    // The winner's GPUs, as a real decision would build them.
    let (i, s) = best?;
    score::score(policy, &ledger.nodes()[i], pod, ctx)
        .ok()
        .map(|_| (i, s))
}

fn bench(c: &mut Criterion) {
    let ledger = cluster();
    let (mix, pod) = (mix(), pod());
    let ctx = ScoreContext::new(&mix);
    let mut group = c.benchmark_group("decide_5000x8");
    for policy in POLICIES {
        group.bench_function(policy.name(), |b| {
            b.iter(|| decide(&ledger, &pod, policy, ctx))
        });
    }
    // As the extender decides: with the per-node measure it keeps current between requests.
    let mut cache = FragCache::default();
    cache.refresh(&ledger, &mix);
    let warm = ScoreContext {
        mix: &mix,
        frag: Some(&cache),
    };
    group.bench_function("fragmentation_cached", |b| {
        b.iter(|| decide(&ledger, &pod, Policy::Fragmentation, warm))
    });
    group.finish();
}

fn percentiles() {
    let ledger = cluster();
    let (mix, pod) = (mix(), pod());
    let mut cache = FragCache::default();
    cache.refresh(&ledger, &mix);
    let cold = ScoreContext::new(&mix);
    let warm = ScoreContext {
        mix: &mix,
        frag: Some(&cache),
    };
    let runs = POLICIES.map(|p| (p.name().to_string(), p, cold));
    let cached = [(
        "fragmentation_cached".to_string(),
        Policy::Fragmentation,
        warm,
    )];
    for (label, policy, ctx) in runs.into_iter().chain(cached) {
        let mut times: Vec<f64> = (0..300)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(decide(&ledger, &pod, policy, ctx));
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "decide_5000x8/{:<21} p50 {:.3} ms  p99 {:.3} ms  ({} decisions)",
            label,
            times[times.len() / 2],
            times[times.len() * 99 / 100],
            times.len()
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `--profile-time` (profiling one benchmark) runs nothing else.
    if !std::env::args().any(|a| a == "--profile-time") {
        percentiles();
    }
}
