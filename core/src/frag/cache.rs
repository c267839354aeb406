//! Per-node fragmentation state kept between decisions.
//!
//! A node's measure against the typical mix depends only on the node, so whoever owns the
//! ledger (the extender's state, a benchmark) refreshes this cache after changes, and scoring a
//! pod then costs only the per-candidate update.
//!
//! Scoring visits every node per decision, so the layout is what makes it fast: entries sit at
//! the node's position in the ledger, in flat arrays walked in order (the measure's per-class
//! tallies, and a copy of each GPU's free compute and memory), so a decision streams through
//! memory instead of chasing a pointer per node. An entry is stamped with the node's version,
//! which no other node state ever has, so a stale or moved entry is never used.

use crate::ledger::{ClusterLedger, NodeLedger};

use super::{ClassSlot, Frag, FragView, NodeFrag, TypicalPods};

/// Fragmentation state of every node, at the ledger version it was computed for.
#[derive(Debug, Clone, Default)]
pub struct FragCache {
    mix: TypicalPods,
    /// By node position.
    entries: Vec<Entry>,
    /// `mix.classes.len()` per entry, in entry order.
    slots: Vec<ClassSlot>,
    /// `stride` per entry, in entry order.
    gpus: Vec<GpuCopy>,
    /// GPUs copied per node: the most any node had at the last full refresh.
    stride: usize,
    /// The ledger layout the entries were last fully checked against.
    layout: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Node version computed at; 0: nothing.
    version: u64,
    cpu_left: u64,
    idle: u64,
    frag: Frag,
    uniform: bool,
    /// GPUs copied; `None` when the node's GPUs are not alike or more than the stride.
    copied: Option<u32>,
    mem_total: u64,
}

/// One GPU as a single share's fit reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GpuCopy {
    /// Free memory, MiB.
    pub mem: u64,
    /// Free compute, thousandths.
    pub core: u32,
    /// Healthy, with a slot free.
    pub open: bool,
}

/// The cache's copy of a node's GPUs, all one model and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuCopies<'a> {
    /// Memory of each GPU, MiB.
    pub mem_total: u64,
    /// In index order.
    pub gpus: &'a [GpuCopy],
}

/// What the cache holds for a node at its current version.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cached<'a> {
    /// The node's measure.
    pub frag: FragView<'a>,
    /// Its GPUs, when copied.
    pub gpus: Option<GpuCopies<'a>>,
}

impl FragCache {
    /// Brings every node up to date with `ledger` and `mix`; forgets nodes no longer there.
    /// Different classes in the mix recompute everything (entries depend on nothing else of it).
    pub fn refresh(&mut self, ledger: &ClusterLedger, mix: &TypicalPods) {
        let stride = ledger
            .nodes()
            .iter()
            .map(|n| n.gpus.len())
            .max()
            .unwrap_or(0);
        if self.mix.classes != mix.classes || self.stride != stride {
            self.mix = mix.clone();
            self.stride = stride;
            self.entries.clear();
        }
        let n = ledger.nodes().len();
        self.entries.truncate(n);
        self.entries.resize(n, Entry::default());
        self.slots
            .resize(n * self.mix.classes.len(), ClassSlot::EMPTY);
        self.gpus.resize(n * self.stride, GpuCopy::default());
        for (i, node) in ledger.nodes().iter().enumerate() {
            self.update(i, node);
        }
        self.layout = Some(ledger.layout());
    }

    /// The same as [`FragCache::refresh`], visiting only the nodes `ledger` reports changed
    /// since the last call ([`ClusterLedger::take_touched`]) unless the mix's classes or the node
    /// set changed: a pod event costs one node's update, not a walk over thousands.
    pub fn refresh_touched(&mut self, ledger: &mut ClusterLedger, mix: &TypicalPods) {
        let touched = ledger.take_touched();
        if self.mix.classes != mix.classes || self.layout != Some(ledger.layout()) {
            self.refresh(ledger, mix);
            return;
        }
        for i in touched {
            if let Some(node) = ledger.nodes().get(i) {
                self.update(i, node);
            }
        }
    }

    fn update(&mut self, i: usize, node: &NodeLedger) {
        if self
            .entries
            .get(i)
            .is_none_or(|e| e.version == node.version)
        {
            return;
        }
        let state = NodeFrag::new(node, &self.mix);
        let k = self.mix.classes.len();
        self.slots[i * k..(i + 1) * k].copy_from_slice(&state.slots);
        let copy = node.gpus_alike() && node.gpus.len() <= self.stride;
        if copy {
            let at = i * self.stride;
            for (c, g) in self.gpus[at..].iter_mut().zip(&node.gpus) {
                *c = GpuCopy {
                    mem: g.mem_free_mib,
                    core: g.core_free,
                    open: g.healthy && g.slots_free > 0,
                };
            }
        }
        self.entries[i] = Entry {
            version: node.version,
            cpu_left: state.cpu_left,
            idle: state.idle,
            frag: state.frag,
            uniform: state.uniform,
            copied: copy.then_some(node.gpus.len() as u32),
            mem_total: node.gpus.first().map_or(0, |g| g.mem_total_mib),
        };
    }

    /// What is cached for `node`, if it is current.
    pub fn get(&self, node: &NodeLedger) -> Option<Cached<'_>> {
        let i = node.slot();
        let e = self.entries.get(i).filter(|e| e.version == node.version)?;
        let k = self.mix.classes.len();
        Some(Cached {
            frag: FragView {
                cpu_left: e.cpu_left,
                idle: e.idle,
                uniform: e.uniform,
                frag: e.frag,
                slots: &self.slots[i * k..(i + 1) * k],
            },
            gpus: e.copied.map(|n| GpuCopies {
                mem_total: e.mem_total,
                gpus: &self.gpus[i * self.stride..i * self.stride + n as usize],
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frag::TypicalPod;
    use crate::ledger::HostCapacity;
    use crate::request::GpuDemand;
    use crate::testing;

    fn mix(milli: u32) -> TypicalPods {
        let demand = GpuDemand {
            gpus: 1,
            mem_mib: 0,
            mem_percent: 0,
            core_milli: milli,
        };
        TypicalPods {
            classes: vec![TypicalPod {
                cpu_milli: 0,
                demand,
                models: vec![],
                weight: 1.0,
            }],
            cpu_per_gpu_milli: None,
            refill: Default::default(),
        }
    }

    #[test]
    fn entries_follow_node_changes_and_the_mix() {
        let mut ledger = ClusterLedger::new(10);
        ledger.upsert_node(
            "a",
            None,
            &testing::gpus("a", 2, "T4", 16384),
            HostCapacity::untracked(),
        );
        let mut cache = FragCache::default();
        cache.refresh(&ledger, &mix(500));
        let node = ledger.node("a").unwrap();
        let fresh = NodeFrag::new(node, &mix(500));
        assert_eq!(cache.get(node).map(|c| c.frag), Some(fresh.view()));
        let copies = cache
            .get(node)
            .and_then(|c| c.gpus)
            .expect("alike GPUs are copied");
        assert_eq!(copies.mem_total, 16384);
        assert_eq!(copies.gpus.len(), 2);
        // A change to the node makes the entry stale until the next refresh.
        testing::hold(ledger.node_mut("a").unwrap(), "p", 0, 0, 700);
        assert_eq!(cache.get(ledger.node("a").unwrap()), None);
        cache.refresh(&ledger, &mix(500));
        let node = ledger.node("a").unwrap();
        assert_eq!(cache.get(node).map(|c| c.frag.frag.published), Some(300.0));
        let copies = cache.get(node).and_then(|c| c.gpus).unwrap();
        assert_eq!(
            copies.gpus[0],
            GpuCopy {
                mem: 16384,
                core: 300,
                open: true
            }
        );
        cache.refresh(&ledger, &mix(200));
        assert_eq!(cache.get(node).map(|c| c.frag.frag.published), Some(0.0));
        ledger.remove_node("a");
        cache.refresh(&ledger, &mix(200));
        assert!(cache.entries.is_empty());
    }

    /// Entries are found by position, so a node at the same position of another ledger, or a
    /// node outside any ledger, must not be answered from them.
    #[test]
    fn a_node_at_the_same_position_elsewhere_is_not_answered() {
        let (mut one, mut other) = (ClusterLedger::new(10), ClusterLedger::new(10));
        add(&mut one, "a");
        add(&mut other, "a");
        testing::hold(other.node_mut("a").unwrap(), "p", 0, 0, 700);
        let mut cache = FragCache::default();
        cache.refresh(&one, &mix(500));
        assert!(cache.get(one.node("a").unwrap()).is_some());
        assert_eq!(cache.get(other.node("a").unwrap()), None);
        assert_eq!(cache.get(&testing::node("a", 2, "T4", 16384)), None);
    }

    fn add(ledger: &mut ClusterLedger, name: &str) {
        let inventory = testing::gpus(name, 2, "T4", 16384);
        ledger.upsert_node(name, None, &inventory, HostCapacity::untracked());
    }

    /// After every kind of change, visiting only the touched nodes leaves the cache exactly as a
    /// full walk does, with every node current.
    #[test]
    fn touched_refresh_equals_a_full_walk() {
        let mut ledger = ClusterLedger::new(10);
        for n in ["a", "b", "c"] {
            add(&mut ledger, n);
        }
        let (mut touched, mut full) = (FragCache::default(), FragCache::default());
        let mut check = |ledger: &mut ClusterLedger, m: u32, step: &str| {
            touched.refresh_touched(ledger, &mix(m));
            full.refresh(ledger, &mix(m));
            for node in ledger.nodes() {
                let got = touched.get(node);
                assert!(got.is_some(), "{step}: {} not current", node.name);
                assert_eq!(got, full.get(node), "{step}: {}", node.name);
            }
            assert_eq!(touched.entries.len(), ledger.nodes().len(), "{step}");
        };
        check(&mut ledger, 500, "start");
        testing::hold(ledger.node_mut("b").unwrap(), "p1", 0, 0, 700);
        check(&mut ledger, 500, "hold on b");
        testing::hold(ledger.node_mut("c").unwrap(), "p2", 1, 0, 300);
        testing::hold(ledger.node_mut("c").unwrap(), "p3", 0, 0, 200);
        check(&mut ledger, 500, "two holds on c");
        ledger.node_mut("c").unwrap().release("p2");
        check(&mut ledger, 500, "release on c");
        add(&mut ledger, "b");
        check(&mut ledger, 500, "b's inventory replaced");
        add(&mut ledger, "d");
        check(&mut ledger, 500, "d added");
        ledger.remove_node("a");
        check(&mut ledger, 500, "a removed (d moves to its index)");
        testing::hold(ledger.node_mut("d").unwrap(), "p4", 0, 0, 900);
        check(&mut ledger, 500, "hold on d at its new index");
        check(&mut ledger, 200, "new mix");
    }
}
