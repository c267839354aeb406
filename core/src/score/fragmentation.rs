//! Fragmentation-aware scoring: the published FGD and Tessera's own policy built on it.
//!
//! Both score a node by how much the node's expected fragmentation (see `frag`) would grow if the
//! pod were placed there, trying every fitting GPU for a single-GPU share. FGD as published squashes
//! the change through a sigmoid into an integer 0–100, so most placements tie at 50 and fall to the
//! node order, which packs well; ours keeps that and breaks the ties by best fit first.

use crate::fit::{self, Free, GpuChoice, Unfit};
use crate::frag::{self, NodeFrag, TypicalPods};
use crate::ledger::{ContainerPlacement, NodeLedger, Placement};
use crate::request::PodRequest;

use super::Scored;

/// The published FGD: `int(sigmoid((F - F') / 1000) * 100)`, first GPU reaching the maximum.
pub(super) fn published(
    node: &NodeLedger,
    pod: &PodRequest,
    mix: &TypicalPods,
) -> Result<Scored, Unfit> {
    evaluate(node, pod, mix, |before, after| {
        let x = (before - after) / 1000.0;
        (100.0 / (1.0 + (-x).exp())).trunc()
    })
}

/// Tessera's `fragmentation`: the published FGD score, then, among nodes that tie on it, the
/// one whose chosen GPUs keep the least compute left over (best fit), then node order.
/// Replays of the trace showed the sigmoid's coarse integer steps are worth keeping: with the
/// exact change instead, placements scatter across nodes and the cluster packs worse.
pub(super) fn ours(
    node: &NodeLedger,
    pod: &PodRequest,
    mix: &TypicalPods,
) -> Result<Scored, Unfit> {
    let mut scored = published(node, pod, mix)?;
    let leftover: u32 = scored
        .placement
        .shares()
        .map(|s| node.gpus[s.gpu].core_free.saturating_sub(s.core_milli))
        .sum();
    // Leftover is at most 1000 per GPU and pods hold fewer than 64 GPUs: it never outweighs a step.
    scored.score = scored.score * TIE_SCALE - f64::from(leftover);
    Ok(scored)
}

/// Scale that keeps the FGD score primary and the leftover a tie-break.
const TIE_SCALE: f64 = 100_000.0;

fn single_share(pod: &PodRequest) -> bool {
    pod.containers.len() == 1
        && pod.containers[0].demand.gpus == 1
        && !pod.containers[0].demand.exclusive()
}

fn evaluate(
    node: &NodeLedger,
    pod: &PodRequest,
    mix: &TypicalPods,
    value: impl Fn(f64, f64) -> f64,
) -> Result<Scored, Unfit> {
    // Feasibility, reasons, and the default (best-fit) GPUs for every other request shape.
    let fallback = fit::place(node, pod, GpuChoice::BestFit)?;
    let state = NodeFrag::new(node, mix);
    if single_share(pod) {
        let c = &pod.containers[0];
        let mut best: Option<(f64, usize)> = None;
        let mut seen: Vec<(u32, u64)> = Vec::with_capacity(node.gpus.len());
        for (i, gpu) in node.gpus.iter().enumerate() {
            let free = Free::of(gpu);
            // GPUs in the same state give the same answer; the first one stands for all.
            if seen.contains(&(free.core, free.mem)) || !fit::gpu_fits(gpu, free, &c.demand, pod) {
                continue;
            }
            seen.push((free.core, free.mem));
            let mut after = free;
            fit::take(&mut after, gpu, i, &c.demand);
            let v = value(
                state.frag,
                state.after_one(i, after.core, after.mem, pod.cpu_milli, mix),
            );
            if best.is_none_or(|(b, _)| v > b) {
                best = Some((v, i));
            }
        }
        if let Some((score, i)) = best {
            let mut free = Free::of(&node.gpus[i]);
            let share = fit::take(&mut free, &node.gpus[i], i, &c.demand);
            let placement = Placement {
                containers: vec![ContainerPlacement {
                    container: c.container.clone(),
                    shares: vec![share],
                }],
            };
            return Ok(Scored { score, placement });
        }
    }
    let mut frees: Vec<(u32, u64)> = node
        .gpus
        .iter()
        .map(|g| (g.core_free, g.mem_free_mib))
        .collect();
    for s in fallback.shares() {
        let f = &mut frees[s.gpu];
        f.0 -= s.core_milli.min(f.0);
        f.1 -= s.mem_mib.min(f.1);
    }
    let cpu_left = frag::node_cpu_left(node).saturating_sub(pod.cpu_milli);
    let after = frag::frag_of(node, &frees, cpu_left, mix);
    Ok(Scored {
        score: value(state.frag, after),
        placement: fallback,
    })
}
