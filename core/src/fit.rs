//! Shared-GPU fit: can a pod be placed on a node, on which GPUs, and if not, exactly why not.
//!
//! A container needs `gpus` distinct healthy GPUs of an allowed model, each with the memory,
//! compute and a free slot for its share; an exclusive (whole-GPU) share needs an idle GPU.
//! Containers are placed one after another on a scratch copy, so two containers of one pod never
//! count the same free memory twice. The ledger is not changed here.

use std::fmt;

use thiserror::Error;

mod chosen;

pub use chosen::{Chosen, FAST_PATH_MAX_GPUS, choose, explain, try_choose};

use crate::ledger::{
    ContainerPlacement, GpuState, InitPlacement, NodeLedger, Placement, Share, Sharing,
};
use crate::request::{GpuDemand, PodRequest, RunAs};

/// How to choose among GPUs that all fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuChoice {
    /// Least compute (then memory) left after placing: packs shares together.
    BestFit,
    /// Most left: spreads shares over GPUs.
    WorstFit,
    /// The lowest-index GPUs that fit, with no comparison among them: what kube-scheduler's DRA
    /// allocator does inside a node (it walks the node's ResourceSlice devices in order, which
    /// for Tessera's driver is `gpu-0`, `gpu-1`, … by NVML index, and takes the first with enough
    /// capacity left; a request for N devices takes the first N). The simulator measures what it
    /// costs against the policy's own choice.
    FirstFit,
}

/// Free resources of one GPU during placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Free {
    /// MiB.
    pub mem: u64,
    /// Thousandths of compute.
    pub core: u32,
    /// Slots.
    pub slots: u32,
}

impl Free {
    /// The free resources recorded in the ledger.
    pub fn of(gpu: &GpuState) -> Self {
        Free {
            mem: gpu.mem_free_mib,
            core: gpu.core_free,
            slots: gpu.slots_free,
        }
    }
}

/// Why one GPU cannot take a container's share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuReject {
    /// Marked unhealthy by the device plugin.
    Unhealthy,
    /// A model the pod does not allow.
    Model(String),
    /// Not enough memory, MiB.
    Memory {
        /// Free.
        free: u64,
        /// Needed.
        needed: u64,
    },
    /// Not enough compute, thousandths.
    Compute {
        /// Free.
        free: u32,
        /// Needed.
        needed: u32,
    },
    /// Every slot is taken.
    Slots,
    /// An exclusive share needs a GPU nobody else uses.
    NotIdle,
    /// No MPS daemon enforces shares here: whole GPUs only (DESIGN.md, "Isolation").
    NotIsolated,
}

impl fmt::Display for GpuReject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuReject::Unhealthy => write!(f, "unhealthy"),
            GpuReject::Model(m) => write!(f, "model {m} not allowed"),
            GpuReject::Memory { free, needed } => write!(f, "{free} MiB free, needs {needed}"),
            GpuReject::Compute { free, needed } => {
                write!(
                    f,
                    "{}% compute free, needs {}%",
                    free / 10,
                    needed.div_ceil(10)
                )
            }
            GpuReject::Slots => write!(f, "no free slot"),
            GpuReject::NotIdle => write!(f, "in use, whole GPU needed"),
            GpuReject::NotIsolated => {
                write!(f, "no live MPS isolation, whole GPUs only")
            }
        }
    }
}

/// Why a pod does not fit a node.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Unfit {
    /// The node reports no GPUs (or no fresh inventory).
    #[error("node {node} has no shareable GPUs")]
    NoGpus {
        /// Node name.
        node: String,
    },
    /// The device plugin's heartbeat is too old to trust the inventory.
    #[error("node {node}: GPU inventory heartbeat is {age_s}s old")]
    StaleInventory {
        /// Node name.
        node: String,
        /// Age in seconds.
        age_s: u64,
    },
    /// Host CPU or memory is short (simulator only; kube-scheduler checks it for real).
    #[error("node {node}: host {what} {requested} requested, {available} free")]
    Host {
        /// Node name.
        node: String,
        /// Which resource.
        what: &'static str,
        /// Requested.
        requested: u64,
        /// Free.
        available: u64,
    },
    /// A container's GPUs cannot be found.
    #[error("node {node}: container {container:?} needs {needed} GPU(s) {demand}, {usable} usable ({})", format_rejects(.rejects))]
    Gpus {
        /// Node name.
        node: String,
        /// Container name.
        container: String,
        /// GPUs needed.
        needed: u32,
        /// GPUs that could take the share.
        usable: u32,
        /// The share, in words.
        demand: String,
        /// Why each other GPU was refused, by UUID.
        rejects: Vec<(String, GpuReject)>,
    },
    /// The node's single-user MPS server serves another user (MPS without `-M`).
    #[error(
        "node {node}: its MPS server runs without multi-user support and serves {}; this pod runs as {}",
        .serving.map_or("no one yet".to_string(), RunAs::describe), .pod.describe()
    )]
    MpsUser {
        /// Node name.
        node: String,
        /// The user the node's MPS clients run as, if any holds a share.
        serving: Option<RunAs>,
        /// The pod's user.
        pod: RunAs,
    },
    /// Anti-affinity or quorum spreading.
    #[error("node {node}: {reason}")]
    Spread {
        /// Node name.
        node: String,
        /// What would be violated.
        reason: String,
    },
}

fn format_rejects(rejects: &[(String, GpuReject)]) -> String {
    rejects
        .iter()
        .map(|(uuid, why)| format!("{uuid}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn describe(d: &GpuDemand) -> String {
    if d.exclusive() {
        return "whole".to_string();
    }
    let mem = match (d.mem_mib, d.mem_percent) {
        (0, 0) => String::new(),
        (m, 0) => format!("{m} MiB, "),
        (_, p) => format!("{p}% memory, "),
    };
    format!("with {mem}{}% compute", d.core_milli / 10)
}

/// Checks one GPU against a share, saying why not.
pub fn check_gpu(
    gpu: &GpuState,
    free: Free,
    demand: &GpuDemand,
    pod: &PodRequest,
) -> Result<(), GpuReject> {
    if !gpu.healthy {
        return Err(GpuReject::Unhealthy);
    }
    if !pod.allows_model(&gpu.ident.model) {
        return Err(GpuReject::Model(gpu.ident.model.clone()));
    }
    check_capacity(gpu, free, demand)
}

/// True when the GPU can take the share (the allocation-free form of [`check_gpu`]).
pub fn gpu_fits(gpu: &GpuState, free: Free, demand: &GpuDemand, pod: &PodRequest) -> bool {
    gpu.healthy && pod.allows_model(&gpu.ident.model) && check_capacity(gpu, free, demand).is_ok()
}

fn check_capacity(gpu: &GpuState, free: Free, demand: &GpuDemand) -> Result<(), GpuReject> {
    if free.slots == 0 {
        return Err(GpuReject::Slots);
    }
    if demand.exclusive() {
        // A whole GPU needs no isolation: nobody else is on it.
        let idle = free.core == crate::request::MILLI_PER_GPU
            && free.mem == gpu.mem_total_mib
            && free.slots == gpu.slots_total;
        return if idle {
            Ok(())
        } else {
            Err(GpuReject::NotIdle)
        };
    }
    if gpu.sharing == Sharing::WholeOnly {
        return Err(GpuReject::NotIsolated);
    }
    let needed = demand.mem_on(gpu.mem_total_mib);
    if free.mem < needed {
        return Err(GpuReject::Memory {
            free: free.mem,
            needed,
        });
    }
    if free.core < demand.core_milli {
        return Err(GpuReject::Compute {
            free: free.core,
            needed: demand.core_milli,
        });
    }
    Ok(())
}

/// True when host CPU and memory fit (or are not tracked) and the node's MPS server may serve
/// the pod's user; the allocation-free [`check_host`].
pub fn host_fits(node: &NodeLedger, pod: &PodRequest) -> bool {
    (node.host.cpu_milli.is_none() || pod.cpu_milli <= node.cpu_free_milli)
        && (node.host.mem_mib.is_none() || pod.mem_mib <= node.mem_free_mib)
        && (!pod.holds_gpus() || node.mps_user_allows(pod.run_as))
}

/// Checks host CPU and memory, when the node tracks them, and the user of a single-user MPS
/// node (a node-wide limit: one control daemon serves all of the node's GPUs).
pub fn check_host(node: &NodeLedger, pod: &PodRequest) -> Result<(), Unfit> {
    if pod.holds_gpus() && !node.mps_user_allows(pod.run_as) {
        return Err(Unfit::MpsUser {
            node: node.name.clone(),
            serving: node.mps_user(),
            pod: pod.run_as,
        });
    }
    let host = |what, requested, available| Unfit::Host {
        node: node.name.clone(),
        what,
        requested,
        available,
    };
    if node.host.cpu_milli.is_some() && pod.cpu_milli > node.cpu_free_milli {
        return Err(host("cpu milli", pod.cpu_milli, node.cpu_free_milli));
    }
    if node.host.mem_mib.is_some() && pod.mem_mib > node.mem_free_mib {
        return Err(host("memory MiB", pod.mem_mib, node.mem_free_mib));
    }
    Ok(())
}

/// Places every container of `pod` on `node`, choosing GPUs by `choice`.
pub fn place(node: &NodeLedger, pod: &PodRequest, choice: GpuChoice) -> Result<Placement, Unfit> {
    choose(node, pod, choice).map(|c| c.into_placement(node))
}

/// The general placement: containers one after another on a scratch copy of the free resources.
fn place_general(
    node: &NodeLedger,
    pod: &PodRequest,
    choice: GpuChoice,
) -> Result<Placement, Unfit> {
    check_host(node, pod)?;
    let mut placement = Placement::default();
    if !pod.holds_gpus() {
        return Ok(placement);
    }
    if node.gpus.is_empty() {
        return Err(Unfit::NoGpus {
            node: node.name.clone(),
        });
    }
    let mut free: Vec<Free> = node.gpus.iter().map(Free::of).collect();
    let mut usable: Vec<usize> = Vec::with_capacity(node.gpus.len());
    for c in &pod.containers {
        let shares = place_one(node, pod, c, &mut free, &mut usable, choice)?;
        placement.containers.push(shares);
    }
    // An ordinary init container runs alone, before the app containers, beside the sidecars
    // started before it: it must fit beside those only, and init containers never add up (the
    // init rule; the ledger charges each GPU the larger phase, `ledger/charge.rs`).
    for i in &pod.init {
        let mut phase: Vec<Free> = node.gpus.iter().map(Free::of).collect();
        let before = &placement.containers[..i.sidecars_before.min(placement.containers.len())];
        for s in before.iter().flat_map(|c| &c.shares) {
            let f = &mut phase[s.gpu];
            f.mem = f.mem.saturating_sub(s.mem_mib);
            f.core = f.core.saturating_sub(s.core_milli);
            f.slots = f.slots.saturating_sub(1);
        }
        let shares = place_one(node, pod, &i.container, &mut phase, &mut usable, choice)?;
        placement.init.push(InitPlacement {
            placement: shares,
            sidecars_before: i.sidecars_before,
        });
    }
    Ok(placement)
}

/// Places one container on `free`, taking its shares out of it.
fn place_one(
    node: &NodeLedger,
    pod: &PodRequest,
    c: &crate::request::ContainerDemand,
    free: &mut [Free],
    usable: &mut Vec<usize>,
    choice: GpuChoice,
) -> Result<ContainerPlacement, Unfit> {
    let d = &c.demand;
    usable.clear();
    usable.extend((0..node.gpus.len()).filter(|&i| gpu_fits(&node.gpus[i], free[i], d, pod)));
    if usable.len() < d.gpus as usize {
        return Err(gpus_unfit(node, pod, c, free, usable.len()));
    }
    // Key: compute then memory left after the share; ties keep index order (stable sort).
    let left = |i: &usize| {
        let f = free[*i];
        (f.core - d.core_milli.min(f.core), f.mem)
    };
    match choice {
        GpuChoice::BestFit => usable.sort_by_key(left),
        GpuChoice::WorstFit => usable.sort_by_key(|i| std::cmp::Reverse(left(i))),
        // `usable` is already in index order.
        GpuChoice::FirstFit => {}
    }
    let shares: Vec<Share> = usable[..d.gpus as usize]
        .iter()
        .map(|&i| take(&mut free[i], &node.gpus[i], i, d))
        .collect();
    Ok(ContainerPlacement {
        container: c.container.clone(),
        shares,
    })
}

/// The failure report for a container: why each GPU was refused (built only on failure, since
/// naming every GPU costs allocations the hot path must not pay).
fn gpus_unfit(
    node: &NodeLedger,
    pod: &PodRequest,
    c: &crate::request::ContainerDemand,
    free: &[Free],
    usable: usize,
) -> Unfit {
    let rejects = node
        .gpus
        .iter()
        .zip(free)
        .filter_map(|(gpu, f)| {
            check_gpu(gpu, *f, &c.demand, pod)
                .err()
                .map(|why| (gpu.ident.uuid.clone(), why))
        })
        .collect();
    Unfit::Gpus {
        node: node.name.clone(),
        container: c.container.clone(),
        needed: c.demand.gpus,
        usable: usable as u32,
        demand: describe(&c.demand),
        rejects,
    }
}

/// Takes a share of `gpu` out of `free`, returning it.
pub fn take(free: &mut Free, gpu: &GpuState, index: usize, d: &GpuDemand) -> Share {
    let (mem, core) = if d.exclusive() {
        (gpu.mem_total_mib, crate::request::MILLI_PER_GPU)
    } else {
        (d.mem_on(gpu.mem_total_mib), d.core_milli)
    };
    free.mem -= mem.min(free.mem);
    free.core -= core.min(free.core);
    free.slots = free.slots.saturating_sub(1);
    Share {
        gpu: index,
        mem_mib: mem,
        core_milli: core,
    }
}

#[cfg(test)]
mod tests;
