//! GPU fragmentation, the FGD paper's measure (Weng et al., USENIX ATC '23), generalised to
//! memory as well as compute.
//!
//! For a mix of typical requests (the most frequent classes covering 95% of pods, weighted by
//! frequency), a node's idle GPU compute counts as fragmented for a class when the class cannot use
//! it at all (no GPU request, no GPU of an allowed model, not enough host CPU, or fewer usable GPUs
//! than it needs), and, when it fits, only on GPUs too small for the class's per-GPU share.
//! Amounts are thousandths of a GPU. The expected fragmentation is the frequency-weighted sum.

use std::collections::HashMap;

use crate::ledger::{GpuState, NodeLedger};
use crate::request::{GpuDemand, MILLI_PER_GPU};

/// One request class of the typical mix.
#[derive(Debug, Clone, PartialEq)]
pub struct TypicalPod {
    /// Host CPU, millicores.
    pub cpu_milli: u64,
    /// Per-GPU share and count (count 0: a CPU-only class).
    pub demand: GpuDemand,
    /// Allowed models (empty: any).
    pub models: Vec<String>,
    /// Frequency; the weights of a mix sum to 1.
    pub weight: f64,
}

/// The typical request mix.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TypicalPods {
    /// Classes by decreasing frequency.
    pub classes: Vec<TypicalPod>,
}

/// Grouping key of a class: (cpu, per-GPU milli, count, mem, model list).
pub type ClassKey = (u64, u32, u32, u64, Vec<String>);

impl TypicalPods {
    /// The most frequent classes whose counts first reach `coverage` (0–1) of all pods.
    /// Ties in count are ordered by decreasing key so the result does not depend on input order.
    pub fn from_counts(counts: HashMap<ClassKey, u64>, coverage: f64) -> Self {
        let total: u64 = counts.values().sum();
        let mut sorted: Vec<(ClassKey, u64)> = counts.into_iter().collect();
        sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
        let expected = coverage * total as f64;
        let mut cum = 0u64;
        let mut taken = 0;
        for (_, n) in &sorted {
            if cum as f64 >= expected {
                break;
            }
            cum += n;
            taken += 1;
        }
        sorted.truncate(taken);
        let classes = sorted
            .into_iter()
            .map(
                |((cpu_milli, core_milli, gpus, mem_mib, models), n)| TypicalPod {
                    cpu_milli,
                    demand: GpuDemand {
                        gpus,
                        mem_mib,
                        mem_percent: 0,
                        core_milli,
                    },
                    models,
                    weight: n as f64 / cum.max(1) as f64,
                },
            )
            .collect();
        TypicalPods { classes }
    }
}

/// Per-GPU inputs to the measure: free compute and memory, and the GPU itself.
#[derive(Debug, Clone, Copy)]
struct GpuFree<'a> {
    gpu: &'a GpuState,
    core: u32,
    mem: u64,
}

fn usable(class: &TypicalPod, g: &GpuFree<'_>) -> bool {
    let d = &class.demand;
    let need_mem = if d.exclusive() {
        g.gpu.mem_total_mib
    } else {
        d.mem_on(g.gpu.mem_total_mib)
    };
    g.core >= d.core_milli.min(MILLI_PER_GPU)
        && g.mem >= need_mem
        && (class.models.is_empty() || class.models.contains(&g.gpu.model))
}

/// Per class: GPUs usable, and idle compute on GPUs not usable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ClassTally {
    usable: u32,
    stranded: u64,
}

/// A node's fragmentation, prepared so that the effect of one share can be computed per class
/// in constant time (the scoring hot path).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFrag {
    cpu_left: u64,
    idle: u64,
    tallies: Vec<ClassTally>,
    /// The node's current expected fragmentation.
    pub frag: f64,
}

fn cpu_left(node: &NodeLedger) -> u64 {
    if node.host.cpu_milli.is_some() {
        node.cpu_free_milli
    } else {
        u64::MAX
    }
}

fn class_frag(class: &TypicalPod, t: ClassTally, idle: u64, cpu_left: u64) -> u64 {
    let d = &class.demand;
    if d.gpus == 0 || d.core_milli == 0 && d.mem_mib == 0 {
        return idle;
    }
    if cpu_left >= class.cpu_milli && t.usable >= d.gpus {
        t.stranded
    } else {
        idle
    }
}

impl NodeFrag {
    /// Prepares `node` against `mix`.
    pub fn new(node: &NodeLedger, mix: &TypicalPods) -> Self {
        // Iterated in place rather than collected: this runs once per node per decision.
        let frees = || {
            node.gpus.iter().filter(|g| g.healthy).map(|gpu| GpuFree {
                gpu,
                core: gpu.core_free,
                mem: gpu.mem_free_mib,
            })
        };
        let idle: u64 = frees().map(|g| u64::from(g.core)).sum();
        let cpu_left = cpu_left(node);
        let mut frag = 0.0;
        let tallies = mix
            .classes
            .iter()
            .map(|c| {
                let mut t = ClassTally::default();
                for g in frees() {
                    if usable(c, &g) {
                        t.usable += 1;
                    } else {
                        t.stranded += u64::from(g.core);
                    }
                }
                frag += c.weight * class_frag(c, t, idle, cpu_left) as f64;
                t
            })
            .collect();
        NodeFrag {
            cpu_left,
            idle,
            tallies,
            frag,
        }
    }

    /// Expected fragmentation after one GPU goes from its current free (core, mem) to
    /// (`core_after`, `mem_after`) and host CPU drops by `cpu_milli`.
    pub fn after_one(
        &self,
        node: &NodeLedger,
        gpu: usize,
        core_after: u32,
        mem_after: u64,
        cpu_milli: u64,
        mix: &TypicalPods,
    ) -> f64 {
        let state = &node.gpus[gpu];
        let before = GpuFree {
            gpu: state,
            core: state.core_free,
            mem: state.mem_free_mib,
        };
        let after = GpuFree {
            gpu: state,
            core: core_after,
            mem: mem_after,
        };
        let idle = self.idle - u64::from(before.core - core_after.min(before.core));
        let cpu_left = self.cpu_left.saturating_sub(cpu_milli);
        mix.classes
            .iter()
            .zip(&self.tallies)
            .map(|(c, t)| {
                let mut t = *t;
                if usable(c, &before) {
                    t.usable -= 1;
                } else {
                    t.stranded -= u64::from(before.core);
                }
                if usable(c, &after) {
                    t.usable += 1;
                } else {
                    t.stranded += u64::from(after.core);
                }
                c.weight * class_frag(c, t, idle, cpu_left) as f64
            })
            .sum()
    }
}

/// Expected fragmentation of a node whose GPUs have the given free (core, mem), by index, and
/// `cpu_left` host CPU. Used for multi-GPU placements, where several GPUs change at once.
pub fn frag_of(node: &NodeLedger, free: &[(u32, u64)], cpu_left: u64, mix: &TypicalPods) -> f64 {
    let frees: Vec<GpuFree<'_>> = node
        .gpus
        .iter()
        .zip(free)
        .filter(|(g, _)| g.healthy)
        .map(|(gpu, &(core, mem))| GpuFree { gpu, core, mem })
        .collect();
    let idle: u64 = frees.iter().map(|g| u64::from(g.core)).sum();
    mix.classes
        .iter()
        .map(|c| {
            let mut t = ClassTally::default();
            for g in &frees {
                if usable(c, g) {
                    t.usable += 1;
                } else {
                    t.stranded += u64::from(g.core);
                }
            }
            c.weight * class_frag(c, t, idle, cpu_left) as f64
        })
        .sum()
}

mod cache;

pub use cache::FragCache;

/// Host CPU left on a node for the measure (unlimited when not tracked).
pub fn node_cpu_left(node: &NodeLedger) -> u64 {
    cpu_left(node)
}

#[cfg(test)]
mod tests;
