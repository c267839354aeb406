//! Node scoring policies: how good a node is for a pod, and which GPUs it would get there.
//!
//! The served policies are `binpack`, `spread` and `fragmentation` (ours, the default). The
//! published baselines of the FGD paper (Random, DotProd, GpuClustering, GpuPacking, BestFit and
//! FGD itself) are re-implemented here too, so `tessera simulate --compare` runs them all through
//! the same ledger and fit code. Scores are "higher is better"; the simulator breaks exact ties by
//! the seeded node order, as the published simulator does, and the extender maps scores to
//! kube-scheduler's 0–10.

mod baselines;
mod fragmentation;
mod scale;

use std::fmt;

use thiserror::Error;

use crate::fit::{self, Chosen, GpuChoice, Unfit};
use crate::frag::{FragCache, TypicalPods};
use crate::ledger::{NodeLedger, Placement};
use crate::request::PodRequest;

pub use baselines::random_placement;
pub use scale::{MAX_EXTENDER_SCORE, to_extender_scale};

/// A scoring policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Fill the fullest node and GPU first.
    Binpack,
    /// Fill the emptiest node and GPU first.
    Spread,
    /// Tessera's policy: least growth of expected fragmentation, then tightest packing.
    Fragmentation,
    /// Published baseline: a random feasible node.
    Random,
    /// Published baseline: dot product of node free and pod request vectors.
    DotProd,
    /// Published baseline: group pods of the same GPU kind on nodes.
    GpuClustering,
    /// Published baseline: fill partly used GPUs, then partly used nodes.
    GpuPacking,
    /// Published baseline: least CPU and GPU left after placing.
    BestFit,
    /// Published baseline: Fragmentation Gradient Descent as published (sigmoid, integer scores).
    Fgd,
}

/// A policy name that is not known.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown policy {name:?}; known: {}", Policy::ALL.iter().map(|p| p.name()).collect::<Vec<_>>().join(", "))]
pub struct UnknownPolicy {
    /// The name given.
    pub name: String,
}

impl Policy {
    /// Every policy, ours first.
    pub const ALL: [Policy; 9] = [
        Policy::Fragmentation,
        Policy::Binpack,
        Policy::Spread,
        Policy::Random,
        Policy::DotProd,
        Policy::GpuClustering,
        Policy::GpuPacking,
        Policy::BestFit,
        Policy::Fgd,
    ];
    /// The side-by-side comparison of `simulate --compare`: ours and the six published ones.
    pub const COMPARED: [Policy; 7] = [
        Policy::Fragmentation,
        Policy::Random,
        Policy::DotProd,
        Policy::GpuClustering,
        Policy::GpuPacking,
        Policy::BestFit,
        Policy::Fgd,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Binpack => "binpack",
            Policy::Spread => "spread",
            Policy::Fragmentation => "fragmentation",
            Policy::Random => "random",
            Policy::DotProd => "dotprod",
            Policy::GpuClustering => "gpuclustering",
            Policy::GpuPacking => "gpupacking",
            Policy::BestFit => "bestfit",
            Policy::Fgd => "fgd",
        }
    }

    /// The policy's name in the published results (`fgd-baselines.csv`), for baselines.
    pub fn published_name(self) -> Option<&'static str> {
        Some(match self {
            Policy::Random => "01-Random",
            Policy::DotProd => "02-DotProd",
            Policy::GpuClustering => "03-GpuClustering",
            Policy::GpuPacking => "04-GpuPacking",
            Policy::BestFit => "05-BestFit",
            Policy::Fgd => "06-FGD",
            _ => return None,
        })
    }

    /// Parses a command-line name.
    pub fn parse(name: &str) -> Result<Self, UnknownPolicy> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| UnknownPolicy {
                name: name.to_string(),
            })
    }

    /// True when scores are min-max normalised over the feasible nodes before choosing
    /// (the published BestFit does this, with integer truncation).
    pub fn normalises(self) -> bool {
        self == Policy::BestFit
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What scoring needs besides node and pod.
#[derive(Debug, Clone, Copy)]
pub struct ScoreContext<'a> {
    /// The typical request mix the fragmentation policies measure against.
    pub mix: &'a TypicalPods,
    /// Each node's measure against `mix`, when the caller keeps one (otherwise computed per call).
    pub frag: Option<&'a FragCache>,
}

impl<'a> ScoreContext<'a> {
    /// A context without a fragmentation cache.
    pub fn new(mix: &'a TypicalPods) -> Self {
        ScoreContext { mix, frag: None }
    }
}

/// A feasible node's score and the GPUs the pod would get there.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Higher is better.
    pub score: f64,
    /// Chosen GPUs.
    pub placement: Placement,
}

/// A feasible node's score and its chosen GPUs, before any placement is built; `None` when the
/// pod does not fit (the reason is worked out only when asked, by `fit::explain`).
type Evaluation<'p> = Option<(f64, Chosen<'p>)>;

/// Scores `pod` on `node` with the GPUs it would get there, or says why it does not fit.
pub fn score(
    policy: Policy,
    node: &NodeLedger,
    pod: &PodRequest,
    ctx: ScoreContext<'_>,
) -> Result<Scored, Unfit> {
    let (score, chosen) = evaluate(policy, node, pod, ctx)
        .ok_or_else(|| fit::explain(node, pod, GpuChoice::BestFit))?;
    Ok(Scored {
        score,
        placement: chosen.into_placement(node),
    })
}

/// Only the score (`None`: does not fit); what scoring every node of a cluster should call.
pub fn score_value(
    policy: Policy,
    node: &NodeLedger,
    pod: &PodRequest,
    ctx: ScoreContext<'_>,
) -> Option<f64> {
    evaluate(policy, node, pod, ctx).map(|(score, _)| score)
}

fn evaluate<'p>(
    policy: Policy,
    node: &NodeLedger,
    pod: &'p PodRequest,
    ctx: ScoreContext<'_>,
) -> Evaluation<'p> {
    match policy {
        Policy::Binpack | Policy::Spread => packing(policy, node, pod),
        Policy::Fragmentation => fragmentation::ours(node, pod, ctx),
        Policy::Fgd => fragmentation::published(node, pod, ctx),
        Policy::Random => Some((0.0, fit::try_choose(node, pod, GpuChoice::BestFit)?)),
        Policy::DotProd => baselines::dot_product(node, pod),
        Policy::GpuClustering => baselines::gpu_clustering(node, pod),
        Policy::GpuPacking => baselines::gpu_packing(node, pod),
        Policy::BestFit => baselines::best_fit(node, pod),
    }
}

/// Binpack and spread: the share of the node's GPU compute that would be in use afterwards.
fn packing<'p>(policy: Policy, node: &NodeLedger, pod: &'p PodRequest) -> Evaluation<'p> {
    let choice = if policy == Policy::Binpack {
        GpuChoice::BestFit
    } else {
        GpuChoice::WorstFit
    };
    let chosen = fit::try_choose(node, pod, choice)?;
    let total: u64 = node.gpus.iter().filter(|g| g.healthy).count() as u64 * 1000;
    let used_after = total - node.free_gpu_milli() + chosen.used_milli(node);
    let fill = if total == 0 {
        0.0
    } else {
        used_after as f64 / total as f64
    };
    let score = if policy == Policy::Binpack {
        fill
    } else {
        1.0 - fill
    };
    Some((score, chosen))
}

#[cfg(test)]
mod tests;
