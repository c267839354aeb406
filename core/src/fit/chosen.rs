//! The GPUs chosen for a pod on one node, in a form that costs no allocation in the common case
//! (one GPU-requesting container on a node of at most 128 GPUs: a bit set of GPU indices).
//! Scoring every node of a large cluster works on this; only the winner becomes a `Placement`.

use crate::ledger::{ContainerPlacement, NodeLedger, Placement, Share};
use crate::request::{ContainerDemand, PodRequest};

use super::{Free, GpuChoice, Unfit, check_host, gpu_fits, host_fits, place_general, take};

/// Most GPUs a node may have for the allocation-free path; larger nodes take the general one.
pub const FAST_PATH_MAX_GPUS: usize = 128;

/// GPUs chosen for a pod on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chosen<'p> {
    /// The pod asks for no GPUs.
    Nothing,
    /// One GPU-requesting container and the indices of its GPUs, as bits.
    One {
        /// The container.
        container: &'p ContainerDemand,
        /// Bit `i` set: GPU `i` is chosen.
        gpus: u128,
    },
    /// Several containers (or a very large node), fully built.
    Many(Placement),
}

impl Chosen<'_> {
    /// Calls `f` with every share the pod would take (per GPU, by the init rule, when init
    /// containers hold shares).
    pub fn for_each_share(&self, node: &NodeLedger, mut f: impl FnMut(Share)) {
        match self {
            Chosen::Nothing => {}
            Chosen::One { container, gpus } => {
                for (i, gpu) in node
                    .gpus
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| gpus >> i & 1 == 1)
                {
                    f(take(&mut Free::of(gpu), gpu, i, &container.demand));
                }
            }
            Chosen::Many(p) if p.init.is_empty() => p.shares().copied().for_each(f),
            // What the ledger would charge: init phases are not added to what runs together.
            Chosen::Many(p) => p.charges().into_iter().for_each(|c| {
                f(Share {
                    gpu: c.gpu,
                    mem_mib: c.mem_mib,
                    core_milli: c.core_milli,
                })
            }),
        }
    }

    /// Thousandths of GPU compute the pod would take.
    pub fn used_milli(&self, node: &NodeLedger) -> u64 {
        let mut used = 0;
        self.for_each_share(node, |s| used += u64::from(s.core_milli));
        used
    }

    /// The full placement.
    pub fn into_placement(self, node: &NodeLedger) -> Placement {
        match self {
            Chosen::Nothing => Placement::default(),
            Chosen::Many(p) => p,
            Chosen::One { container, .. } => {
                let mut shares = Vec::new();
                self.for_each_share(node, |s| shares.push(s));
                Placement {
                    init: Vec::new(),
                    containers: vec![ContainerPlacement {
                        container: container.container.clone(),
                        shares,
                    }],
                }
            }
        }
    }
}

/// Chooses GPUs for `pod` on `node` by `choice`, or says why it does not fit.
pub fn choose<'p>(
    node: &NodeLedger,
    pod: &'p PodRequest,
    choice: GpuChoice,
) -> Result<Chosen<'p>, Unfit> {
    try_choose(node, pod, choice).ok_or_else(|| explain(node, pod, choice))
}

/// Chooses GPUs, or `None` without saying why: scoring every node of a cluster must not pay
/// for naming each refused GPU. Ask [`explain`] when the reason is wanted.
pub fn try_choose<'p>(
    node: &NodeLedger,
    pod: &'p PodRequest,
    choice: GpuChoice,
) -> Option<Chosen<'p>> {
    if !host_fits(node, pod) {
        return None;
    }
    match pod.containers.as_slice() {
        [] if pod.init.is_empty() => Some(Chosen::Nothing),
        _ if node.gpus.is_empty() => None,
        // Init containers take the general path: their phases are placed apart.
        [c] if pod.init.is_empty() && node.gpus.len() <= FAST_PATH_MAX_GPUS => {
            select_one(node, pod, c, choice)
                .ok()
                .map(|gpus| Chosen::One { container: c, gpus })
        }
        _ => place_general(node, pod, choice).ok().map(Chosen::Many),
    }
}

/// Why `pod` does not fit `node`.
pub fn explain(node: &NodeLedger, pod: &PodRequest, choice: GpuChoice) -> Unfit {
    if let Err(unfit) = check_host(node, pod) {
        return unfit;
    }
    match place_general(node, pod, choice) {
        Err(unfit) => unfit,
        // Not reached when the pod really does not fit: both paths test the same predicates.
        Ok(_) => Unfit::NoGpus {
            node: node.name.clone(),
        },
    }
}

/// Picks the container's GPUs with the same order as a stable sort by (compute left, memory
/// free): best fit takes the smallest keys, worst fit the largest, ties by lower index; first
/// fit takes the lowest indices that fit.
/// Returns the number of usable GPUs when there are too few.
fn select_one(
    node: &NodeLedger,
    pod: &PodRequest,
    c: &ContainerDemand,
    choice: GpuChoice,
) -> Result<u128, usize> {
    let d = &c.demand;
    let usable = |i: usize| gpu_fits(&node.gpus[i], Free::of(&node.gpus[i]), d, pod);
    let key = |i: usize| {
        let f = Free::of(&node.gpus[i]);
        (f.core - d.core_milli.min(f.core), f.mem)
    };
    let mut chosen: u128 = 0;
    for taken in 0..d.gpus as usize {
        let mut best: Option<usize> = None;
        for i in (0..node.gpus.len()).filter(|i| chosen >> i & 1 == 0 && usable(*i)) {
            let better = match (best, choice) {
                (None, _) => true,
                (Some(b), GpuChoice::BestFit) => key(i) < key(b),
                (Some(b), GpuChoice::WorstFit) => key(i) > key(b),
                (Some(_), GpuChoice::FirstFit) => false,
            };
            if better {
                best = Some(i);
            }
        }
        match best {
            Some(i) => chosen |= 1 << i,
            None => return Err(taken),
        }
    }
    Ok(chosen)
}
