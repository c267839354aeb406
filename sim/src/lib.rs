//! The simulator engine behind `tessera simulate`: the bundled scenario and trace replays, run
//! through the same request, fit, scoring and ledger code as the servers. Inputs come in as
//! readers or parsed data; the CLI owns files, progress bars and printing.

pub mod baselines;
pub mod engine;
pub mod replay;
pub mod report;
pub mod scenario;
pub mod scheduler;
pub mod summary;
mod ties;
pub mod trace;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use engine::Variant;

use replay::{ReplayConfig, ReplayResult};
use trace::{TraceNode, TracePod};

/// Runs every (variant, seed) replay on `threads` threads; `on_done` is called after each.
/// Results come back ordered by variant (as given), then seed; only the first keeps its ledger.
pub fn run_replays(
    nodes: &[TraceNode],
    pods: &[TracePod],
    variants: &[Variant],
    seeds: &[u64],
    threads: usize,
    on_done: &(dyn Fn(&ReplayResult) + Sync),
) -> Vec<ReplayResult> {
    run_configs(
        nodes,
        pods,
        &published_jobs(variants, seeds),
        threads,
        on_done,
    )
}

/// The published protocol's replay of every (variant, seed), ordered by variant then seed.
pub fn published_jobs(variants: &[Variant], seeds: &[u64]) -> Vec<ReplayConfig> {
    variants
        .iter()
        .flat_map(|p| seeds.iter().map(|s| ReplayConfig::published(*p, *s)))
        .collect()
}

/// Runs every replay of `jobs` on `threads` threads; results come back in the order of `jobs`,
/// and only the first keeps its ledger.
pub fn run_configs(
    nodes: &[TraceNode],
    pods: &[TracePod],
    jobs: &[ReplayConfig],
    threads: usize,
    on_done: &(dyn Fn(&ReplayResult) + Sync),
) -> Vec<ReplayResult> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, ReplayResult)>> = Mutex::new(Vec::with_capacity(jobs.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(cfg) = jobs.get(k) else { break };
                    let mut result = replay::replay(nodes, pods, *cfg);
                    if k > 0 {
                        result.ledger = None;
                    }
                    on_done(&result);
                    if let Ok(mut all) = results.lock() {
                        all.push((k, result));
                    }
                }
            });
        }
    });
    let mut all = results.into_inner().unwrap_or_default();
    all.sort_by_key(|(k, _)| *k);
    all.into_iter().map(|(_, r)| r).collect()
}

/// The extra runs of the online reference: per seed, `tries` replays of `variant` on the same
/// arrivals with other node orders, i.e. other tie-breaks for a policy whose ties fall to the
/// node order (FGD's do). Each is an online run; the best of them per seed is what a lucky
/// tie-break would have reached, not what one policy reaches every time.
pub fn tie_break_jobs(variant: Variant, seeds: &[u64], tries: u64) -> Vec<ReplayConfig> {
    seeds
        .iter()
        .flat_map(|&seed| {
            (1..=tries).map(move |k| ReplayConfig {
                node_seed: Some(seed.wrapping_mul(1_000_003).wrapping_add(k)),
                ..ReplayConfig::published(variant, seed)
            })
        })
        .collect()
}
