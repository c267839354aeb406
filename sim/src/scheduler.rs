//! kube-scheduler's own node choice for a pod whose GPUs come through DRA, with no extender
//! configured: the model behind the `kube-scheduler/first-fit` variant.
//!
//! What is modelled (kube-scheduler's default profile, `pkg/scheduler`):
//! - filtering stops once `numFeasibleNodesToFind` nodes pass (adaptive
//!   `percentageOfNodesToScore`: 50 − nodes/125 percent, at least 5%, at least 100 nodes), and
//!   the next pod's search starts where this one stopped (`nextStartNodeIndex`);
//! - a node passes when host CPU and memory fit (NodeResourcesFit) and the DRA allocator finds
//!   GPUs there (DynamicResources), which is Tessera's fit with first-fit GPUs;
//! - the score is NodeResourcesFit with its default LeastAllocated strategy on CPU and memory
//!   (equal weights) plus NodeResourcesBalancedAllocation on the same two, each 0–100, weight 1.
//!   DynamicResources gives every node the same score unless a claim lists alternatives
//!   (`firstAvailable`), which a trace pod's claim does not; the other default plugins (taints,
//!   affinity, topology spread, image locality) see nothing in the trace that tells nodes apart;
//! - the winner is a highest score, uniformly at random among ties (`selectHost`);
//! - inside the node, the allocator's first fit.
//!
//! Requests are the pods' own (every trace pod asks for CPU, so the scheduler's non-zero
//! defaults for empty requests never apply). GPUs are not scored: no default plugin reads them.

use tessera_core::fit::{self, GpuChoice};
use tessera_core::ledger::{ClusterLedger, NodeLedger, Placement};
use tessera_core::request::PodRequest;
use tessera_core::rng::Rng;

use crate::ties::random_top;

/// Fewest nodes kube-scheduler looks for before it stops filtering (`minFeasibleNodesToFind`).
const MIN_FEASIBLE_NODES: usize = 100;
/// Smallest adaptive share of nodes, percent (`minFeasibleNodesPercentageToFind`).
const MIN_FEASIBLE_PERCENT: usize = 5;
/// Highest score of one plugin (`MaxNodeScore`).
const MAX_NODE_SCORE: i64 = 100;

/// Where the last search stopped; the rest is the ledger.
#[derive(Debug, Default)]
pub struct KubeScheduler {
    next_start: usize,
}

impl KubeScheduler {
    /// The node and GPUs kube-scheduler with DRA would give `pod`, or `None` if it fits
    /// nowhere. `rank` only vetoes nodes (`None`); kube-scheduler does not rank by it.
    pub fn choose(
        &mut self,
        ledger: &ClusterLedger,
        pod: &PodRequest,
        rng: &mut Rng,
        rank: &dyn Fn(&NodeLedger) -> Option<f64>,
    ) -> Option<(usize, Placement)> {
        let nodes = ledger.nodes();
        if nodes.is_empty() {
            return None;
        }
        let want = feasible_to_find(nodes.len());
        let mut feasible: Vec<usize> = Vec::with_capacity(want);
        let mut processed = 0;
        for k in 0..nodes.len() {
            let i = (self.next_start + k) % nodes.len();
            processed += 1;
            let node = &nodes[i];
            if rank(node).is_some() && fit::try_choose(node, pod, GpuChoice::FirstFit).is_some() {
                feasible.push(i);
                if feasible.len() == want {
                    break;
                }
            }
        }
        self.next_start = (self.next_start + processed) % nodes.len();
        if feasible.is_empty() {
            return None;
        }
        let scores: Vec<i64> = feasible.iter().map(|&i| score(&nodes[i], pod)).collect();
        let winner = feasible[random_top(&scores, rng)];
        let placement = fit::place(&nodes[winner], pod, GpuChoice::FirstFit).ok()?;
        Some((winner, placement))
    }
}

/// How many feasible nodes kube-scheduler looks for among `all` (`numFeasibleNodesToFind`
/// with `percentageOfNodesToScore` unset).
pub fn feasible_to_find(all: usize) -> usize {
    if all < MIN_FEASIBLE_NODES {
        return all;
    }
    let percent = 50usize.saturating_sub(all / 125).max(MIN_FEASIBLE_PERCENT);
    (all * percent / 100).max(MIN_FEASIBLE_NODES)
}

/// LeastAllocated plus BalancedAllocation on CPU and memory, with `pod` placed.
pub fn score(node: &NodeLedger, pod: &PodRequest) -> i64 {
    let cpu = Fill::of(node.host.cpu_milli, node.cpu_free_milli, pod.cpu_milli);
    let mem = Fill::of(node.host.mem_mib, node.mem_free_mib, pod.mem_mib);
    let least = (cpu.least_allocated() + mem.least_allocated()) / 2;
    // Standard deviation of two fractions is half their difference.
    let spread = (cpu.fraction() - mem.fraction()).abs() / 2.0;
    let balanced = ((1.0 - spread) * MAX_NODE_SCORE as f64) as i64;
    least + balanced
}

/// One resource of a node once the pod is placed: capacity and requested (in its unit).
#[derive(Debug, Clone, Copy)]
struct Fill {
    capacity: u64,
    requested: u64,
}

impl Fill {
    /// An untracked resource counts as empty capacity: it scores 0 and looks fully requested.
    fn of(capacity: Option<u64>, free: u64, pod: u64) -> Fill {
        let capacity = capacity.unwrap_or(0);
        Fill {
            capacity,
            requested: capacity.saturating_sub(free).saturating_add(pod),
        }
    }

    /// `(capacity − requested) × 100 / capacity`, integer, 0 when over capacity.
    fn least_allocated(self) -> i64 {
        if self.capacity == 0 || self.requested > self.capacity {
            return 0;
        }
        ((self.capacity - self.requested) * MAX_NODE_SCORE as u64 / self.capacity) as i64
    }

    /// Requested over capacity, at most 1.
    fn fraction(self) -> f64 {
        if self.capacity == 0 {
            return 1.0;
        }
        (self.requested as f64 / self.capacity as f64).min(1.0)
    }
}

#[cfg(test)]
mod tests;
