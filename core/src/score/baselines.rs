//! The published baselines of the FGD paper, re-implemented from its description and artifact:
//! DotProd, GpuClustering, GpuPacking, BestFit and the GPU choice of Random. Each keeps the
//! published integer arithmetic, because the truncations decide ties and ties decide placements.
//! All use best-fit GPU choice (the fullest GPU that fits; the lowest-index idle GPUs for whole ones).

use crate::fit::{self, Chosen, Free, GpuChoice, Unfit};
use crate::ledger::{ContainerPlacement, NodeLedger, Placement};
use crate::request::{MILLI_PER_GPU, PodRequest};
use crate::rng::Rng;

use super::Evaluation;

/// The reference node size the published formulas normalise by: 128 cores, 8 GPUs.
const REF_CPU_MILLI: f64 = 128_000.0;
const REF_GPU_MILLI: f64 = 8_000.0;

struct Shape {
    cpu_left: f64,
    gpu_left: u64,
    cpu: f64,
    gpu: u64,
}

fn shape(node: &NodeLedger, pod: &PodRequest) -> Shape {
    Shape {
        cpu_left: crate::frag::node_cpu_left(node).min(1 << 40) as f64,
        gpu_left: node.free_gpu_milli(),
        cpu: pod.cpu_milli as f64,
        gpu: pod.total_gpu_milli(),
    }
}

fn best<'p>(
    node: &NodeLedger,
    pod: &'p PodRequest,
    score: impl FnOnce(&Chosen<'p>) -> i64,
) -> Evaluation<'p> {
    let chosen = fit::try_choose(node, pod, GpuChoice::BestFit)?;
    Some((score(&chosen) as f64, chosen))
}

/// DotProd: `100 * (1 - <free, request> / 2)` on the reference-normalised (cpu, gpu) vectors.
pub(super) fn dot_product<'p>(node: &NodeLedger, pod: &'p PodRequest) -> Evaluation<'p> {
    let s = shape(node, pod);
    best(node, pod, |_| {
        let dot = (s.cpu_left / REF_CPU_MILLI) * (s.cpu / REF_CPU_MILLI)
            + (s.gpu_left as f64 / REF_GPU_MILLI) * (s.gpu as f64 / REF_GPU_MILLI);
        (100.0 * (1.0 - dot / 2.0)) as i64
    })
}

/// The kind of GPU request, for clustering like with like.
fn gpu_kind(pod_shares: &[(u32, u32)]) -> Option<String> {
    match pod_shares {
        [] => None,
        [(1, milli)] if *milli < MILLI_PER_GPU => Some("share-gpu".to_string()),
        [(n, _)] => Some(format!("{n}-gpu")),
        _ => Some("multi-container".to_string()),
    }
}

/// GpuClustering: a small packing term plus a bonus for nodes already running the same kind.
pub(super) fn gpu_clustering<'p>(node: &NodeLedger, pod: &'p PodRequest) -> Evaluation<'p> {
    let shares: Vec<(u32, u32)> = pod
        .containers
        .iter()
        .map(|c| (c.demand.gpus, c.demand.core_milli))
        .collect();
    let Some(kind) = gpu_kind(&shares) else {
        return best(node, pod, |_| 0);
    };
    let left = node.free_gpu_milli() as i64;
    let base = 25 * (REF_GPU_MILLI as i64 - left) / REF_GPU_MILLI as i64;
    let mut kinds: Vec<String> = node
        .holders()
        .values()
        .filter_map(|h| {
            let per: Vec<(u32, u32)> = h
                .placement
                .containers
                .iter()
                .map(|c| {
                    (
                        c.shares.len() as u32,
                        c.shares.first().map_or(0, |s| s.core_milli),
                    )
                })
                .collect();
            gpu_kind(&per)
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    let bonus = match (kinds.contains(&kind), kinds.len()) {
        (true, 1) => 75,
        (true, _) => 50,
        (false, 0) => 25,
        (false, _) => 0,
    };
    best(node, pod, |_| base + bonus)
}

/// GpuPacking: partly used GPUs first, then partly used nodes, idle nodes last.
pub(super) fn gpu_packing<'p>(node: &NodeLedger, pod: &'p PodRequest) -> Evaluation<'p> {
    if pod.containers.is_empty() {
        return best(node, pod, |_| 0);
    }
    let n = node.gpus.len() as i64;
    if node.gpus.iter().all(|g| g.core_free == MILLI_PER_GPU) {
        return best(node, pod, |_| (33 - n).max(n));
    }
    best(node, pod, |chosen| {
        let (mut whole, mut pct) = (0i64, 0i64);
        chosen.for_each_share(node, |s| {
            let free = node.gpus[s.gpu].core_free;
            whole += i64::from(free == MILLI_PER_GPU);
            pct += i64::from(free) * 100 / 1000;
        });
        if whole > 0 {
            (50 - whole).max(33)
        } else {
            (100 - pct / 10).max(50)
        }
    })
}

/// BestFit: least CPU and GPU left after placing, on the reference scale (normalised later).
pub(super) fn best_fit<'p>(node: &NodeLedger, pod: &'p PodRequest) -> Evaluation<'p> {
    let s = shape(node, pod);
    best(node, pod, |_| {
        let left = 0.5 * (s.cpu_left - s.cpu) / REF_CPU_MILLI
            + 0.5 * (s.gpu_left as f64 - s.gpu as f64) / REF_GPU_MILLI;
        ((1.0 - left) * 100.0) as i64
    })
}

/// Random's GPU choice: a uniformly random fitting GPU for a share (reservoir sampling in index
/// order), the lowest-index idle GPUs for whole ones.
pub fn random_placement(
    node: &NodeLedger,
    pod: &PodRequest,
    rng: &mut Rng,
) -> Result<Placement, Unfit> {
    let fallback = fit::place(node, pod, GpuChoice::BestFit)?;
    let ([c], true) = (pod.containers.as_slice(), pod.init.is_empty()) else {
        return Ok(fallback);
    };
    if c.demand.gpus != 1 || c.demand.exclusive() {
        return Ok(fallback);
    }
    let mut chosen = None;
    let mut count = 0u64;
    for (i, gpu) in node.gpus.iter().enumerate() {
        if fit::gpu_fits(gpu, Free::of(gpu), &c.demand, pod) {
            count += 1;
            if rng.below(count) == 0 {
                chosen = Some(i);
            }
        }
    }
    let Some(i) = chosen else {
        return Ok(fallback);
    };
    let share = fit::take(&mut Free::of(&node.gpus[i]), &node.gpus[i], i, &c.demand);
    Ok(Placement {
        init: Vec::new(),
        containers: vec![ContainerPlacement {
            container: c.container.clone(),
            shares: vec![share],
        }],
    })
}
