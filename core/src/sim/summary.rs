//! Aggregating replays into the figures `simulate --trace` prints: per policy the mean over
//! seeds and each seed's own figures, with the published figure beside it when there is one.
//! The same structs serialise to the `--output json` document.

use serde::Serialize;

use super::baselines::Published;
use super::engine::Variant;
use super::replay::ReplayResult;

/// One seed's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedFigures {
    /// Seed.
    pub seed: u64,
    /// Allocation ratio (%) at 100% arrived.
    pub alloc_pct_100: f64,
    /// Allocation ratio (%) at 130% arrived.
    pub alloc_pct_130: f64,
    /// Unallocated GPUs at 130% arrived.
    pub unallocated_gpus_130: f64,
    /// Pods placed.
    pub placed: usize,
    /// Pods that fit nowhere.
    pub failed: usize,
}

/// A policy's figures on one trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicySummary {
    /// Policy name.
    pub policy: String,
    /// Mean allocation ratio (%) at 100% arrived.
    pub alloc_pct_100: f64,
    /// Mean allocation ratio (%) at 130% arrived.
    pub alloc_pct_130: f64,
    /// Mean unallocated GPUs at 130% arrived.
    pub unallocated_gpus_130: f64,
    /// Per seed.
    pub per_seed: Vec<SeedFigures>,
    /// The published figure for this policy and trace, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<Published>,
}

/// A whole comparison on one trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceSummary {
    /// Trace name.
    pub trace: String,
    /// GPUs in the cluster.
    pub cluster_gpus: u64,
    /// Seeds run.
    pub seeds: Vec<u64>,
    /// Per policy, in the order run.
    pub policies: Vec<PolicySummary>,
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Summarises `results` (ordered by variant then seed, as `run_replays` returns them).
pub fn summarise(
    trace: &str,
    variants: &[Variant],
    seeds: &[u64],
    results: &[ReplayResult],
    published: &[Published],
) -> TraceSummary {
    let policies = variants
        .iter()
        .map(|v| {
            let runs: Vec<&ReplayResult> = results.iter().filter(|r| r.variant == *v).collect();
            // The published figures are for the policies' own scores, not the 0–10 interface.
            let published_name = if v.through_extender {
                None
            } else {
                v.policy.published_name()
            };
            PolicySummary {
                policy: v.label(),
                alloc_pct_100: mean(runs.iter().map(|r| r.alloc_pct_100)),
                alloc_pct_130: mean(runs.iter().map(|r| r.alloc_pct_130)),
                unallocated_gpus_130: mean(runs.iter().map(|r| r.unallocated_gpus_130)),
                per_seed: runs
                    .iter()
                    .map(|r| SeedFigures {
                        seed: r.seed,
                        alloc_pct_100: r.alloc_pct_100,
                        alloc_pct_130: r.alloc_pct_130,
                        unallocated_gpus_130: r.unallocated_gpus_130,
                        placed: r.placed,
                        failed: r.failed,
                    })
                    .collect(),
                published: published_name
                    .and_then(|name| {
                        published
                            .iter()
                            .find(|b| b.trace == trace && b.policy == name)
                    })
                    .cloned(),
            }
        })
        .collect();
    TraceSummary {
        trace: trace.to_string(),
        cluster_gpus: results.first().map_or(0, |r| r.cluster_gpus),
        seeds: seeds.to_vec(),
        policies,
    }
}
