//! Upper bounds on the GPU allocation that any placement of a trace's pods could reach, so a
//! comparison can say how far a policy is from the best possible, not only from another policy.
//!
//! The bound is a linear relaxation. Pods are grouped into classes (same CPU, host memory, GPU
//! count, per-GPU share and allowed models) and nodes into types (same CPU, host memory, GPU
//! count and model). A variable `x[c][t] >= 0` is the number of pods of class `c` placed on
//! nodes of type `t`; it exists only where one pod of `c` fits on an empty node of `t`. The
//! model maximises the GPU compute placed, `sum x[c][t] * gpus(c) * share(c)`, subject to:
//!
//! - per class, `sum_t x[c][t] <= arrived(c)`;
//! - per node type, the pods placed on its nodes together fit in the nodes' total CPU, host
//!   memory and GPU compute (`count(t)` times one node's);
//! - per node type, GPUs held by a share above half a GPU (whole GPUs included), counted once
//!   per GPU of the pod, are at most the type's GPUs: two such shares never fit one GPU.
//!
//! Why it is an upper bound: take any placement of any subset of the arrived pods in which
//! every node holds what fits it (the simulator's placements are such, whatever the policy and
//! order). Counting its pods per class and node type gives an `x` that meets every constraint:
//! the per-type sums are sums of per-node constraints the placement meets, a pod is only ever
//! on a node it fits alone, and no GPU holds two shares above half. So the placement's GPU
//! allocation is at most the linear programme's optimum. The relaxation drops integrality and
//! the split of a type's capacity into nodes and GPUs, which is where it is loose: it can pack
//! an 8-GPU pod into the leftovers of several half-used nodes. CPU-only pods are left out; they
//! only take CPU and memory, and leaving a pod out is allowed. The optimum is computed in
//! floating point, so it is a bound up to the solver's tolerance (about 1e-9 relative).
//!
//! This crate leaves the trace parsing and the arrival order to tessera-core, so the pods it
//! bounds are exactly those a replay sees.

use std::collections::BTreeMap;

use microlp::{ComparisonOp, OptimizationDirection, Problem, SolveOutcome};
use tessera_core::rng::Rng;
use tessera_sim::replay::arrival_order;
use tessera_sim::trace::{TraceNode, TracePod};
use thiserror::Error;

/// Thousandths of a GPU in one GPU.
const MILLI: f64 = 1000.0;

/// Why no bound could be computed.
#[derive(Debug, Error)]
pub enum BoundError {
    /// The solver failed or stopped without an optimum.
    #[error("linear programme over {classes} pod classes and {types} node types: {reason}")]
    Solver {
        /// Pod classes in the model.
        classes: usize,
        /// Node types in the model.
        types: usize,
        /// The solver's message.
        reason: String,
    },
}

/// The bound on one list of arrived pods.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    /// Most GPU compute any placement could allocate, thousandths of a GPU.
    pub alloc_milli: f64,
    /// The cluster's GPU compute, thousandths of a GPU.
    pub capacity_milli: u64,
    /// Pod classes in the model (GPU pods only).
    pub classes: usize,
    /// Node types in the model.
    pub types: usize,
}

impl Bound {
    /// The bound as an allocation ratio, percent of capacity.
    pub fn alloc_pct(&self) -> f64 {
        100.0 * self.alloc_milli / (self.capacity_milli.max(1) as f64)
    }

    /// The fewest GPUs any placement leaves unallocated.
    pub fn unallocated_gpus(&self) -> f64 {
        (self.capacity_milli as f64 - self.alloc_milli).max(0.0) / MILLI
    }
}

/// Pod class key: (cpu milli, memory MiB, GPUs, per-GPU milli, allowed models).
type PodClass = (u64, u64, u32, u32, Vec<String>);
/// Node type key: (cpu milli, memory MiB, GPUs, model).
type NodeType = (u64, u64, u32, String);

/// Bounds the GPU allocation of any placement of `pods` (all of them arrived) on `nodes`.
pub fn bound(nodes: &[TraceNode], pods: &[TracePod]) -> Result<Bound, BoundError> {
    let mut classes: BTreeMap<PodClass, u64> = BTreeMap::new();
    for p in pods.iter().filter(|p| p.total_gpu_milli() > 0) {
        let key = (
            p.cpu_milli,
            p.memory_mib,
            p.num_gpu,
            p.gpu_milli,
            p.gpu_spec.clone(),
        );
        *classes.entry(key).or_default() += 1;
    }
    let mut types: BTreeMap<NodeType, u64> = BTreeMap::new();
    for n in nodes.iter().filter(|n| n.gpus > 0) {
        *types
            .entry((n.cpu_milli, n.memory_mib, n.gpus, n.model.clone()))
            .or_default() += 1;
    }
    let capacity_milli: u64 = nodes.iter().map(|n| u64::from(n.gpus) * 1000).sum();
    let classes: Vec<(PodClass, u64)> = classes.into_iter().collect();
    let types: Vec<(NodeType, u64)> = types.into_iter().collect();
    let alloc_milli = solve(&classes, &types).map_err(|reason| BoundError::Solver {
        classes: classes.len(),
        types: types.len(),
        reason,
    })?;
    Ok(Bound {
        alloc_milli,
        capacity_milli,
        classes: classes.len(),
        types: types.len(),
    })
}

/// One pod of class `c` fits on an empty node of type `t`.
fn fits_alone(c: &PodClass, t: &NodeType) -> bool {
    let (cpu, mem, gpus, _, models) = c;
    let (n_cpu, n_mem, n_gpus, model) = t;
    cpu <= n_cpu
        && mem <= n_mem
        && gpus <= n_gpus
        && (models.is_empty() || models.iter().any(|m| m == model))
}

/// The linear programme's optimum, thousandths of a GPU. Rows are in cores, GiB and GPUs so
/// that coefficients stay within the solver's recommended range.
fn solve(classes: &[(PodClass, u64)], types: &[(NodeType, u64)]) -> Result<f64, String> {
    let mut lp = Problem::new(OptimizationDirection::Maximize);
    // Per node type: (variable, class index) of the classes that fit it.
    let mut per_type: Vec<Vec<(microlp::Variable, usize)>> = vec![Vec::new(); types.len()];
    let mut per_class: Vec<Vec<microlp::Variable>> = vec![Vec::new(); classes.len()];
    for (ci, (c, arrived)) in classes.iter().enumerate() {
        let gpus = f64::from(c.2) * f64::from(c.3) / MILLI;
        for (ti, (t, _)) in types.iter().enumerate() {
            if fits_alone(c, t) {
                let x = lp.add_var(gpus, (0.0, *arrived as f64));
                per_type[ti].push((x, ci));
                per_class[ci].push(x);
            }
        }
    }
    for (ci, vars) in per_class.iter().enumerate() {
        if vars.len() > 1 {
            let row: Vec<(microlp::Variable, f64)> = vars.iter().map(|x| (*x, 1.0)).collect();
            lp.add_constraint(row, ComparisonOp::Le, classes[ci].1 as f64);
        }
    }
    for (ti, ((cpu, mem, gpus, _), count)) in types.iter().enumerate() {
        let count = *count as f64;
        let vars = &per_type[ti];
        let class = |ci: usize| &classes[ci].0;
        let mut row = |coef: &dyn Fn(&PodClass) -> f64, rhs: f64| {
            let terms: Vec<(microlp::Variable, f64)> = vars
                .iter()
                .map(|(x, ci)| (*x, coef(class(*ci))))
                .filter(|(_, a)| *a > 0.0)
                .collect();
            if !terms.is_empty() {
                lp.add_constraint(terms, ComparisonOp::Le, rhs);
            }
        };
        row(&|c| c.0 as f64 / MILLI, count * *cpu as f64 / MILLI);
        row(&|c| c.1 as f64 / 1024.0, count * *mem as f64 / 1024.0);
        row(
            &|c| f64::from(c.2) * f64::from(c.3) / MILLI,
            count * f64::from(*gpus),
        );
        row(
            &|c| if c.3 > 500 { f64::from(c.2) } else { 0.0 },
            count * f64::from(*gpus),
        );
    }
    match lp.solve().map_err(|e| e.to_string())? {
        SolveOutcome::Solution(s) => Ok(s.objective() * MILLI),
        SolveOutcome::Interrupted(i) => Err(format!(
            "stopped without a solution ({:?})",
            i.termination_reason()
        )),
    }
}

/// The bound for each seed of a replay with the published protocol: the pods that arrive by
/// `tune_ratio` × capacity with that seed (the same list the replay places).
pub fn per_seed(
    nodes: &[TraceNode],
    pods: &[TracePod],
    seeds: &[u64],
    tune_ratio: f64,
) -> Result<Vec<(u64, Bound)>, BoundError> {
    let capacity: u64 = nodes.iter().map(|n| u64::from(n.gpus) * 1000).sum();
    seeds
        .iter()
        .map(|&seed| {
            let arrived = arrival_order(pods, capacity, tune_ratio, &mut Rng::new(seed));
            Ok((seed, bound(nodes, &arrived)?))
        })
        .collect()
}

#[cfg(test)]
mod tests;
