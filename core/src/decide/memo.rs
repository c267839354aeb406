//! Per-node answers remembered between requests. kube-scheduler asks about pods of a few request
//! shapes over and over, and between two requests only the nodes a bind touched change; so the
//! fit verdict and policy score of a node for a request shape are kept, stamped with the node's
//! ledger version, and recomputed only when that node changed. The whole memo starts over when
//! the policy, the typical mix or the node layout changes.

use crate::frag::TypicalPods;
use crate::hash::FnvMap;
use crate::ledger::{ClusterLedger, NodeLedger};
use crate::request::{PodRequest, RunAs};
use crate::score::Policy;

/// Most request shapes remembered; past it the memo starts over.
pub const MAX_SHAPES: usize = 256;

/// What makes two pods the same for fit and policy score (not for spreading: group scores are
/// never remembered).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Shape {
    demands: Vec<(u32, u64, u32, u32)>,
    /// Ordinary init containers' demands, each with the sidecars before it (the init rule).
    init: Vec<((u32, u64, u32, u32), usize)>,
    models: Vec<String>,
    cpu_milli: u64,
    mem_mib: u64,
    /// A single-user MPS node fits one user's pods and not another's.
    run_as: RunAs,
}

impl Shape {
    fn of(pod: &PodRequest) -> Self {
        let key = |d: &crate::request::GpuDemand| (d.gpus, d.mem_mib, d.mem_percent, d.core_milli);
        Shape {
            demands: pod.containers.iter().map(|c| key(&c.demand)).collect(),
            init: pod
                .init
                .iter()
                .map(|i| (key(&i.container.demand), i.sidecars_before))
                .collect(),
            models: pod.models.clone(),
            cpu_milli: pod.cpu_milli,
            mem_mib: pod.mem_mib,
            run_as: pod.run_as,
        }
    }
}

/// One node's remembered answers for one shape.
#[derive(Debug, Clone, Default)]
struct Entry {
    /// Ledger version the answers hold for; `None`: nothing remembered.
    version: Option<u64>,
    /// `Some(None)`: fits; `Some(Some(reason))`: does not.
    fit: Option<Option<Box<str>>>,
    score: Option<f64>,
}

/// Remembered fit verdicts and policy scores.
#[derive(Debug, Clone, Default)]
pub struct Memo {
    policy: Option<Policy>,
    mix: TypicalPods,
    layout: u64,
    shapes: FnvMap<Shape, usize>,
    entries: Vec<Vec<Entry>>,
}

/// A shape's slot in the memo, valid for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapeId(usize);

impl Memo {
    /// The slot for `pod` under `policy`, `mix` and `ledger`'s layout, forgetting everything
    /// first if any of those changed.
    pub fn shape(
        &mut self,
        policy: Policy,
        mix: &TypicalPods,
        ledger: &ClusterLedger,
        pod: &PodRequest,
    ) -> ShapeId {
        if self.policy != Some(policy)
            || self.layout != ledger.layout()
            || self.mix != *mix
            || self.shapes.len() >= MAX_SHAPES
        {
            self.policy = Some(policy);
            self.layout = ledger.layout();
            self.mix = mix.clone();
            self.shapes.clear();
            self.entries.clear();
        }
        let next = self.shapes.len();
        let id = *self.shapes.entry(Shape::of(pod)).or_insert(next);
        if id == self.entries.len() {
            self.entries.push(Vec::new());
        }
        let slots = &mut self.entries[id];
        if slots.len() < ledger.nodes().len() {
            slots.resize(ledger.nodes().len(), Entry::default());
        }
        ShapeId(id)
    }

    fn entry(&mut self, shape: ShapeId, index: usize, node: &NodeLedger) -> &mut Entry {
        let entry = &mut self.entries[shape.0][index];
        if entry.version != Some(node.version) {
            *entry = Entry {
                version: Some(node.version),
                ..Entry::default()
            };
        }
        entry
    }

    /// The fit verdict (`None`: fits; else the reason) of node `index`, computed if unknown.
    pub fn fit(
        &mut self,
        shape: ShapeId,
        index: usize,
        node: &NodeLedger,
        compute: impl FnOnce() -> Option<String>,
    ) -> Option<&str> {
        let entry = self.entry(shape, index, node);
        entry
            .fit
            .get_or_insert_with(|| compute().map(String::into_boxed_str))
            .as_deref()
    }

    /// The policy score of node `index`, computed if unknown.
    pub fn score(
        &mut self,
        shape: ShapeId,
        index: usize,
        node: &NodeLedger,
        compute: impl FnOnce() -> f64,
    ) -> f64 {
        *self
            .entry(shape, index, node)
            .score
            .get_or_insert_with(compute)
    }
}
