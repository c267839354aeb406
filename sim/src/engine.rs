//! The simulator's scheduling loop: score a pod on every node with a policy and pick the best,
//! breaking exact ties by node order (the published simulator's rule; its node order is seeded).
//!
//! Scores depend only on the node's state and the pod's request class, so they are cached per
//! (node, class) and recomputed only when the node's ledger version changed: a placement touches
//! one node, so each pod costs one recomputation per class instead of one per node.
//!
//! A variant may leave the GPUs inside the chosen node to kube-scheduler's DRA allocator (first
//! fit by index), or the node too (kube-scheduler alone, see [`crate::scheduler`]): what DRA
//! placement costs against the policy's own choice.

use std::collections::HashMap;

use tessera_core::fit::{self, GpuChoice, Unfit};
use tessera_core::ledger::{ClusterLedger, NodeLedger, Placement};
use tessera_core::request::PodRequest;
use tessera_core::rng::Rng;
use tessera_core::score::{self, Policy, ScoreContext};

use crate::scheduler::KubeScheduler;
use crate::ties::random_top;

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

/// Who picks the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeChoice {
    /// The policy's scores, whole or through the extender's 0–10.
    Policy,
    /// kube-scheduler alone with DRA and no extender: its default score plugins
    /// (see [`crate::scheduler`]); the policy is not consulted.
    KubeScheduler,
}

/// Who picks the GPUs inside the chosen node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceChoice {
    /// The policy, as the extender does at bind time for the device plugin path.
    Policy,
    /// kube-scheduler's DRA allocator: the lowest-index GPUs that fit (`GpuChoice::FirstFit`).
    DraFirstFit,
}

/// A policy, whether its scores reach the decision whole or through kube-scheduler's extender
/// interface (integers 0–10, ties broken at random as kube-scheduler's `selectHost` does), and
/// who picks the node and the GPUs inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Variant {
    /// The policy.
    pub policy: Policy,
    /// Scores squeezed to 0–10, ties random.
    pub through_extender: bool,
    /// Who picks the node.
    pub nodes: NodeChoice,
    /// Who picks the GPUs inside the node.
    pub devices: DeviceChoice,
}

impl Variant {
    /// The policy's own scores decide.
    pub fn ideal(policy: Policy) -> Self {
        Variant {
            policy,
            through_extender: false,
            nodes: NodeChoice::Policy,
            devices: DeviceChoice::Policy,
        }
    }

    /// The policy as kube-scheduler sees it through the extender.
    pub fn through_extender(policy: Policy) -> Self {
        Variant {
            through_extender: true,
            ..Variant::ideal(policy)
        }
    }

    /// The same node choice, with the GPUs inside the node left to kube-scheduler's DRA
    /// allocator (first fit by index).
    pub fn dra_allocator(self) -> Self {
        Variant {
            devices: DeviceChoice::DraFirstFit,
            ..self
        }
    }

    /// kube-scheduler alone with DRA: its default node scores and the allocator's first fit.
    /// `policy` is kept only as a field value (spread, the nearest in spirit); it is not used.
    pub fn kube_scheduler_dra() -> Self {
        Variant {
            nodes: NodeChoice::KubeScheduler,
            ..Variant::ideal(Policy::Spread).dra_allocator()
        }
    }

    /// True for the policy as published: its own scores, its own GPUs.
    pub fn is_plain(&self) -> bool {
        *self == Variant::ideal(self.policy)
    }

    /// `fragmentation`, `fragmentation@0-10` through the extender, a `/first-fit` suffix when
    /// the DRA allocator picks the GPUs, `kube-scheduler/first-fit` without an extender.
    pub fn label(&self) -> String {
        let nodes = match (self.nodes, self.through_extender) {
            (NodeChoice::KubeScheduler, _) => "kube-scheduler".to_string(),
            (NodeChoice::Policy, true) => format!("{}@0-10", self.policy.name()),
            (NodeChoice::Policy, false) => self.policy.name().to_string(),
        };
        match self.devices {
            DeviceChoice::Policy => nodes,
            DeviceChoice::DraFirstFit => format!("{nodes}/first-fit"),
        }
    }
}

/// A policy plus its score cache.
#[derive(Debug)]
pub struct Chooser {
    policy: Policy,
    through_extender: bool,
    devices: DeviceChoice,
    /// Set when kube-scheduler picks the node (it keeps where its last search stopped).
    kube: Option<KubeScheduler>,
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
            devices: variant.devices,
            kube: (variant.nodes == NodeChoice::KubeScheduler).then(KubeScheduler::default),
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
        if let Some(kube) = &mut self.kube {
            return kube.choose(ledger, pod, rng, rank);
        }
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
        let placement = match (self.devices, self.policy) {
            // The node the policy chose, the GPUs the allocator would take there; the pod fits
            // the node, so it fits first fit too (the same predicates, any GPUs that pass).
            (DeviceChoice::DraFirstFit, _) => fit::place(node, pod, GpuChoice::FirstFit).ok()?,
            (_, Policy::Random) => score::random_placement(node, pod, rng).ok()?,
            (_, _) => score::score(self.policy, node, pod, ctx).ok()?.placement,
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

#[cfg(test)]
mod tests;
