//! GPU fragmentation, the FGD paper's measure (Weng et al., USENIX ATC '23), generalised to
//! memory as well as compute.
//!
//! For a mix of typical requests (the most frequent classes covering 95% of pods, weighted by
//! frequency), a node's idle GPU compute counts as fragmented for a class when the class cannot use
//! it at all (no GPU request, no GPU of an allowed model, not enough host CPU, or fewer usable GPUs
//! than it needs), and, when it fits, only on GPUs too small for the class's per-GPU share.
//! Amounts are thousandths of a GPU. The expected fragmentation is the frequency-weighted sum.
//!
//! Every evaluation yields two measures ([`Frag`]): FGD's as published, and a counted one. The
//! FGD measure asks only whether host CPU is left for *one* pod of a class, so a node whose CPU
//! would run out after three of its eight free GPUs looks unfragmented. Counted, the GPUs beyond
//! what the CPU holds are fragmented for that class too. Both come from the same per-class
//! tallies, so the second costs one division per class.

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

/// A node's expected fragmentation on both measures, thousandths of a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Frag {
    /// FGD's measure as published: host CPU is only asked to hold one pod of a class.
    pub published: f64,
    /// Usable GPUs beyond what the free host CPU holds also count as fragmented for a class.
    pub counted: f64,
}

impl Frag {
    fn add(&mut self, weight: f64, (published, counted): (u64, u64)) {
        self.published += weight * published as f64;
        self.counted += weight * counted as f64;
    }
}

/// The typical request mix.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TypicalPods {
    /// Classes by decreasing frequency.
    pub classes: Vec<TypicalPod>,
    /// Host CPU per GPU over the cluster's GPU nodes, millicores ([`cpu_per_gpu`]); `None` when
    /// no node's CPU is known. A GPU pod asking more per GPU can strand GPUs through their host
    /// CPU, and Tessera's policy weighs the counted measure for it.
    pub cpu_per_gpu_milli: Option<u64>,
    /// What the classes leave idle for good on a GPU ([`RefillTable`]), worked out on first use.
    pub refill: RefillMemo,
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
        TypicalPods {
            classes,
            cpu_per_gpu_milli: None,
            refill: RefillMemo::default(),
        }
    }

    /// The expected idle compute the classes leave on a GPU, by its free compute.
    pub fn refill(&self) -> &RefillTable {
        self.refill.get_or_init(self)
    }
}

/// Host CPU per GPU over the nodes that have GPUs and tracked host CPU, millicores.
pub fn cpu_per_gpu<'a>(nodes: impl IntoIterator<Item = &'a NodeLedger>) -> Option<u64> {
    let (cpu, gpus) = nodes
        .into_iter()
        .filter(|n| !n.gpus.is_empty())
        .filter_map(|n| Some((n.host.cpu_milli?, n.gpus.len() as u64)))
        .fold((0, 0), |(c, g), (nc, ng)| (c + nc, g + ng));
    (gpus > 0).then(|| cpu / gpus)
}

/// Per-GPU inputs to the measure: free compute and memory, and the GPU itself.
#[derive(Debug, Clone, Copy)]
struct GpuFree<'a> {
    gpu: &'a GpuState,
    core: u32,
    mem: u64,
}

fn usable(class: &TypicalPod, g: &GpuFree<'_>) -> bool {
    Need::of(class, g.gpu).met(g.core, g.mem)
}

/// Per class: GPUs usable and their idle compute, and idle compute on GPUs not usable.
/// (u32 sums: a node's idle compute is at most 1,000 per GPU.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ClassTally {
    usable: u32,
    usable_idle: u32,
    stranded: u32,
}

impl ClassTally {
    fn add(&mut self, usable: bool, core: u32) {
        if usable {
            self.usable += 1;
            self.usable_idle += core;
        } else {
            self.stranded += core;
        }
    }

    fn remove(&mut self, usable: bool, core: u32) {
        if usable {
            self.usable -= 1;
            self.usable_idle -= core;
        } else {
            self.stranded -= core;
        }
    }
}

/// What a class needs free on one GPU to use it: `usable` reduced to two comparisons. Worked
/// out once per node, because the GPUs of a node are almost always one model of one size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Need {
    core: u32,
    mem: u64,
    model_ok: bool,
}

impl Need {
    fn of(class: &TypicalPod, gpu: &GpuState) -> Need {
        let d = &class.demand;
        Need {
            core: d.core_milli.min(MILLI_PER_GPU),
            mem: if d.exclusive() {
                gpu.mem_total_mib
            } else {
                d.mem_on(gpu.mem_total_mib)
            },
            model_ok: class.models.is_empty() || class.models.contains(&gpu.ident.model),
        }
    }

    fn met(self, core: u32, mem: u64) -> bool {
        self.model_ok && core >= self.core && mem >= self.mem
    }
}

/// One class's tally on a node, with what it needs of the node's GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ClassSlot {
    tally: ClassTally,
    need: Need,
}

impl ClassSlot {
    const EMPTY: ClassSlot = ClassSlot {
        tally: ClassTally {
            usable: 0,
            usable_idle: 0,
            stranded: 0,
        },
        need: Need {
            core: 0,
            mem: 0,
            model_ok: false,
        },
    };
}

/// A node's fragmentation, prepared so that the effect of one share can be computed per class
/// in constant time (the scoring hot path).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFrag {
    cpu_left: u64,
    idle: u64,
    /// One per class of the mix, in order.
    slots: Vec<ClassSlot>,
    /// Every GPU is the model and size the needs were worked out for; when not, needs are
    /// worked out per GPU.
    uniform: bool,
    /// The node's current expected fragmentation.
    pub frag: Frag,
}

fn cpu_left(node: &NodeLedger) -> u64 {
    if node.host.cpu_milli.is_some() {
        node.cpu_free_milli
    } else {
        u64::MAX
    }
}

/// A class's fragmented compute on a node: (published, counted).
fn class_frag(class: &TypicalPod, t: ClassTally, idle: u64, cpu_left: u64) -> (u64, u64) {
    let d = &class.demand;
    if d.gpus == 0 || d.core_milli == 0 && d.mem_mib == 0 {
        return (idle, idle);
    }
    if cpu_left < class.cpu_milli || t.usable < d.gpus {
        return (idle, idle);
    }
    let stranded = u64::from(t.stranded);
    // `u64::MAX`: host CPU not tracked, nothing to count.
    if class.cpu_milli == 0 || cpu_left == u64::MAX {
        return (stranded, stranded);
    }
    let held = (cpu_left / class.cpu_milli).saturating_mul(u64::from(d.gpus));
    let beyond = u64::from(t.usable).saturating_sub(held);
    // Which usable GPUs the CPU leaves idle is not known: count them at the average.
    let counted = stranded + beyond * u64::from(t.usable_idle) / u64::from(t.usable);
    (stranded, counted)
}

impl NodeFrag {
    /// Prepares `node` against `mix`.
    pub fn new(node: &NodeLedger, mix: &TypicalPods) -> Self {
        // Iterated in place rather than collected: this runs once per node per decision.
        let healthy = || node.gpus.iter().filter(|g| g.healthy);
        let first = healthy().next();
        let uniform = node.gpus_alike();
        let idle: u64 = healthy().map(|g| u64::from(g.core_free)).sum();
        let cpu_left = cpu_left(node);
        let mut frag = Frag::default();
        let slots = mix
            .classes
            .iter()
            .map(|c| {
                let need = first.map_or(
                    Need {
                        core: 0,
                        mem: 0,
                        model_ok: false,
                    },
                    |f| Need::of(c, f),
                );
                let mut t = ClassTally::default();
                for g in healthy() {
                    let n = if uniform { need } else { Need::of(c, g) };
                    t.add(n.met(g.core_free, g.mem_free_mib), g.core_free);
                }
                frag.add(c.weight, class_frag(c, t, idle, cpu_left));
                ClassSlot { tally: t, need }
            })
            .collect();
        NodeFrag {
            cpu_left,
            idle,
            slots,
            uniform,
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
    ) -> Frag {
        let state = &node.gpus[gpu];
        self.view().after(
            (state.core_free, state.mem_free_mib),
            (core_after, mem_after),
            cpu_milli,
            mix,
            Some(state),
        )
    }

    /// The borrowed form scoring works with.
    pub fn view(&self) -> FragView<'_> {
        FragView {
            cpu_left: self.cpu_left,
            idle: self.idle,
            uniform: self.uniform,
            frag: self.frag,
            slots: &self.slots,
        }
    }
}

/// A node's prepared measure, borrowed from a [`NodeFrag`] or from the [`FragCache`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FragView<'a> {
    cpu_left: u64,
    idle: u64,
    uniform: bool,
    /// The node's current expected fragmentation.
    pub frag: Frag,
    slots: &'a [ClassSlot],
}

impl FragView<'_> {
    /// Expected fragmentation after one GPU goes from free (core, mem) `before` to `after` and
    /// host CPU drops by `cpu_milli`. `gpu` is needed only when the node's GPUs are not alike.
    pub fn after(
        &self,
        before: (u32, u64),
        after: (u32, u64),
        cpu_milli: u64,
        mix: &TypicalPods,
        gpu: Option<&GpuState>,
    ) -> Frag {
        let ((core_before, mem_before), (core_after, mem_after)) = (before, after);
        let idle = self.idle - u64::from(core_before - core_after.min(core_before));
        let cpu_left = self.cpu_left.saturating_sub(cpu_milli);
        let mut frag = Frag::default();
        for (c, slot) in mix.classes.iter().zip(self.slots) {
            let need = match gpu {
                Some(g) if !self.uniform => Need::of(c, g),
                _ => slot.need,
            };
            let mut t = slot.tally;
            t.remove(need.met(core_before, mem_before), core_before);
            t.add(need.met(core_after, mem_after), core_after);
            frag.add(c.weight, class_frag(c, t, idle, cpu_left));
        }
        frag
    }
}

/// Expected fragmentation of a node whose GPUs have the given free (core, mem), by index, and
/// `cpu_left` host CPU. Used for multi-GPU placements, where several GPUs change at once.
pub fn frag_of(node: &NodeLedger, free: &[(u32, u64)], cpu_left: u64, mix: &TypicalPods) -> Frag {
    let frees: Vec<GpuFree<'_>> = node
        .gpus
        .iter()
        .zip(free)
        .filter(|(g, _)| g.healthy)
        .map(|(gpu, &(core, mem))| GpuFree { gpu, core, mem })
        .collect();
    let idle: u64 = frees.iter().map(|g| u64::from(g.core)).sum();
    let mut frag = Frag::default();
    for c in &mix.classes {
        let mut t = ClassTally::default();
        for g in &frees {
            t.add(usable(c, g), g.core);
        }
        frag.add(c.weight, class_frag(c, t, idle, cpu_left));
    }
    frag
}

mod cache;
mod refill;

pub use cache::{Cached, FragCache, GpuCopies, GpuCopy};
pub use refill::{RefillMemo, RefillTable};

/// Host CPU left on a node for the measure (unlimited when not tracked).
pub fn node_cpu_left(node: &NodeLedger) -> u64 {
    cpu_left(node)
}

#[cfg(test)]
mod tests;
