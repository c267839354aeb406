//! The simulator's scheduling loop: score a pod on every node with a policy and pick the best,
//! breaking exact ties by node order (the published simulator's rule; its node order is seeded).
//!
//! Scores depend only on the node's state and the pod's request class, so they are cached per
//! (node, class) and recomputed only when the node's ledger version changed: a placement touches
//! one node, so each pod costs one recomputation per class instead of one per node.

use std::collections::HashMap;

use tessera_core::fit::Unfit;
use tessera_core::ledger::{ClusterLedger, NodeLedger, Placement};
use tessera_core::request::PodRequest;
use tessera_core::rng::Rng;
use tessera_core::score::{self, Policy, ScoreContext};

/// Cache key of a request class: everything of a pod request that scoring reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClassKey {
    cpu: u64,
    mem: u64,
    demands: Vec<tessera_core::request::GpuDemand>,
    models: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    version: u64,
    score: Option<f64>,
}

/// A policy, and whether its scores reach the decision whole or through kube-scheduler's
/// extender interface: integers 0–10, ties broken at random as kube-scheduler's `selectHost` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Variant {
    /// The policy.
    pub policy: Policy,
    /// Scores squeezed to 0–10, ties random.
    pub through_extender: bool,
}

impl Variant {
    /// The policy's own scores decide.
    pub fn ideal(policy: Policy) -> Self {
        Variant {
            policy,
            through_extender: false,
        }
    }

    /// The policy as kube-scheduler sees it through the extender.
    pub fn through_extender(policy: Policy) -> Self {
        Variant {
            policy,
            through_extender: true,
        }
    }

    /// `fragmentation`, or `fragmentation@0-10` through the extender.
    pub fn label(&self) -> String {
        if self.through_extender {
            format!("{}@0-10", self.policy.name())
        } else {
            self.policy.name().to_string()
        }
    }
}

/// A policy plus its score cache.
#[derive(Debug)]
pub struct Chooser {
    policy: Policy,
    through_extender: bool,
    classes: HashMap<ClassKey, usize>,
    cache: Vec<Vec<Entry>>,
}

impl Chooser {
    /// A chooser for `policy` with an empty cache.
    pub fn new(policy: Policy) -> Self {
        Chooser::for_variant(Variant::ideal(policy))
    }

    /// A chooser for `variant` with an empty cache.
    pub fn for_variant(variant: Variant) -> Self {
        Chooser {
            policy: variant.policy,
            through_extender: variant.through_extender,
            classes: HashMap::new(),
            cache: Vec::new(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    fn class_of(&mut self, pod: &PodRequest) -> usize {
        let key = ClassKey {
            cpu: pod.cpu_milli,
            mem: pod.mem_mib,
            demands: pod.containers.iter().map(|c| c.demand).collect(),
            models: pod.models.clone(),
        };
        let next = self.classes.len();
        *self.classes.entry(key).or_insert(next)
    }

    /// The node index and GPUs `pod` should get, or `None` if it fits nowhere.
    /// `rank` vetoes nodes (`None`, e.g. the quorum filter) or ranks them before the policy's
    /// score (spreading); it is not cached.
    pub fn choose(
        &mut self,
        ledger: &ClusterLedger,
        pod: &PodRequest,
        ctx: ScoreContext<'_>,
        rng: &mut Rng,
        rank: &dyn Fn(&NodeLedger) -> Option<f64>,
    ) -> Option<(usize, Placement)> {
        let class = self.class_of(pod);
        let nodes = ledger.nodes();
        self.cache.resize_with(nodes.len(), Vec::new);
        let mut feasible: Vec<(usize, f64, f64)> = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            let row = &mut self.cache[i];
            if row.len() <= class {
                row.resize(
                    class + 1,
                    Entry {
                        version: u64::MAX,
                        score: None,
                    },
                );
            }
            let entry = &mut row[class];
            if entry.version != node.version {
                entry.score = score::score_value(self.policy, node, pod, ctx);
                entry.version = node.version;
            }
            if let Some(s) = entry.score
                && let Some(r) = rank(node)
            {
                feasible.push((i, r, s));
            }
        }
        let winner = self.pick(&feasible, rng)?;
        let node = &nodes[winner];
        let placement = match self.policy {
            Policy::Random => score::random_placement(node, pod, rng).ok()?,
            _ => score::score(self.policy, node, pod, ctx).ok()?.placement,
        };
        Some((winner, placement))
    }

    fn pick(&self, feasible: &[(usize, f64, f64)], rng: &mut Rng) -> Option<usize> {
        let top = feasible
            .iter()
            .map(|f| f.1)
            .fold(f64::NEG_INFINITY, f64::max);
        let feasible: Vec<(usize, f64)> = feasible
            .iter()
            .filter(|f| f.1 >= top)
            .map(|f| (f.0, f.2))
            .collect();
        if feasible.is_empty() {
            return None;
        }
        if self.policy == Policy::Random {
            return Some(feasible[rng.below(feasible.len() as u64) as usize].0);
        }
        let scores: Vec<f64> = if self.policy.normalises() {
            normalise(&feasible)
        } else {
            feasible.iter().map(|f| f.1).collect()
        };
        if self.through_extender {
            return Some(feasible[random_top(&score::to_extender_scale(&scores), rng)].0);
        }
        let mut best = 0;
        for (k, s) in scores.iter().enumerate() {
            if *s > scores[best] {
                best = k;
            }
        }
        Some(feasible[best].0)
    }
}

/// Index of a highest score, uniformly at random among ties (reservoir sampling, as
/// kube-scheduler picks among equally scored nodes).
fn random_top(scores: &[i64], rng: &mut Rng) -> usize {
    let (mut best, mut seen) = (0, 0u64);
    for (k, s) in scores.iter().enumerate() {
        if *s > scores[best] {
            (best, seen) = (k, 1);
        } else if *s == scores[best] {
            seen += 1;
            if rng.below(seen) == 0 {
                best = k;
            }
        }
    }
    best
}

/// kube-scheduler's integer min-max normalisation to 0–100.
fn normalise(feasible: &[(usize, f64)]) -> Vec<f64> {
    let lo = feasible.iter().map(|f| f.1 as i64).min().unwrap_or(0);
    let hi = feasible.iter().map(|f| f.1 as i64).max().unwrap_or(0);
    feasible
        .iter()
        .map(|f| {
            if hi == lo {
                0.0
            } else {
                ((f.1 as i64 - lo) * 100 / (hi - lo)) as f64
            }
        })
        .collect()
}

/// Why the best node was refused (for the scenario's failure report): the first node's reason.
pub fn first_reason(
    ledger: &ClusterLedger,
    pod: &PodRequest,
    policy: Policy,
    ctx: ScoreContext<'_>,
) -> Option<Unfit> {
    ledger
        .nodes()
        .iter()
        .find_map(|n| score::score(policy, n, pod, ctx).err())
}
