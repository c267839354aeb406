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
    /// Upper bound on what any placement of the arrived pods could allocate, when computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound: Option<LimitSummary>,
    /// Online reference: the best run per seed among the policies and extra tie-breaks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<LimitSummary>,
}

/// One seed's figure of a limit (bound or reference).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LimitSeed {
    /// Seed.
    pub seed: u64,
    /// Allocation ratio (%) at 130% arrived.
    pub alloc_pct_130: f64,
    /// Unallocated GPUs at 130% arrived.
    pub unallocated_gpus_130: f64,
}

/// A limit printed beside the policies: its mean over seeds and how it was found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitSummary {
    /// How the figure was found, in a few words.
    pub method: String,
    /// Mean allocation ratio (%) at 130% arrived.
    pub alloc_pct_130: f64,
    /// Mean unallocated GPUs at 130% arrived.
    pub unallocated_gpus_130: f64,
    /// Per seed.
    pub per_seed: Vec<LimitSeed>,
}

impl LimitSummary {
    /// The means of `per_seed`.
    pub fn new(method: impl Into<String>, per_seed: Vec<LimitSeed>) -> Self {
        LimitSummary {
            method: method.into(),
            alloc_pct_130: mean(per_seed.iter().map(|s| s.alloc_pct_130)),
            unallocated_gpus_130: mean(per_seed.iter().map(|s| s.unallocated_gpus_130)),
            per_seed,
        }
    }
}

impl TraceSummary {
    /// The share (0–1) of `baseline`'s distance to the bound, in unallocated GPUs, that
    /// `policy` closes: 1 reaches the bound, 0 is no better than the baseline, negative is worse.
    pub fn closed_share(&self, policy: &str, baseline: &str) -> Option<f64> {
        let idle = |name: &str| {
            self.policies
                .iter()
                .find(|p| p.policy == name)
                .map(|p| p.unallocated_gpus_130)
        };
        let floor = self.bound.as_ref()?.unallocated_gpus_130;
        let (ours, base) = (idle(policy)?, idle(baseline)?);
        (base - floor > 0.0).then(|| (base - ours) / (base - floor))
    }
}

/// Per seed, the best allocation at 130% among `results` (any policies and tie-breaks).
pub fn best_per_seed<'a>(results: impl IntoIterator<Item = &'a ReplayResult>) -> Vec<LimitSeed> {
    let mut best: Vec<LimitSeed> = Vec::new();
    for r in results {
        let seed = LimitSeed {
            seed: r.seed,
            alloc_pct_130: r.alloc_pct_130,
            unallocated_gpus_130: r.unallocated_gpus_130,
        };
        match best.iter_mut().find(|b| b.seed == r.seed) {
            Some(b) if b.alloc_pct_130 < r.alloc_pct_130 => *b = seed,
            Some(_) => {}
            None => best.push(seed),
        }
    }
    best.sort_by_key(|b| b.seed);
    best
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
            // The published figures are for the policies' own scores and GPUs, not the 0–10
            // interface or the DRA allocator.
            let published_name = if v.is_plain() {
                v.policy.published_name()
            } else {
                None
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
        bound: None,
        reference: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, unallocated: f64) -> PolicySummary {
        PolicySummary {
            policy: name.into(),
            alloc_pct_100: 0.0,
            alloc_pct_130: 0.0,
            unallocated_gpus_130: unallocated,
            per_seed: Vec::new(),
            published: None,
        }
    }

    fn seed(seed: u64, alloc: f64) -> LimitSeed {
        LimitSeed {
            seed,
            alloc_pct_130: alloc,
            unallocated_gpus_130: 100.0 - alloc,
        }
    }

    #[test]
    fn closed_share_is_the_part_of_fgds_distance_to_the_bound_we_remove() {
        let mut s = TraceSummary {
            trace: "t".into(),
            cluster_gpus: 100,
            seeds: vec![42],
            policies: vec![policy("fragmentation", 25.0), policy("fgd", 30.0)],
            bound: None,
            reference: None,
        };
        assert_eq!(s.closed_share("fragmentation", "fgd"), None);
        s.bound = Some(LimitSummary::new("lp", vec![seed(42, 90.0)]));
        // FGD is 30 − 10 = 20 GPUs from the bound; 5 of them closed.
        let share = s.closed_share("fragmentation", "fgd").unwrap();
        assert!((share - 0.25).abs() < 1e-12);
        assert_eq!(s.closed_share("fgd", "fgd"), Some(0.0));
        assert_eq!(s.closed_share("nope", "fgd"), None);
    }

    #[test]
    fn limit_means_are_over_seeds() {
        let l = LimitSummary::new("x", vec![seed(42, 90.0), seed(43, 96.0)]);
        assert!((l.alloc_pct_130 - 93.0).abs() < 1e-12);
        assert!((l.unallocated_gpus_130 - 7.0).abs() < 1e-12);
    }
}
