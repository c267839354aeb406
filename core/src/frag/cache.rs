//! Per-node fragmentation state kept between decisions.
//!
//! A node's measure against the typical mix depends only on the node, so whoever owns the
//! ledger (the extender's state, a benchmark) refreshes this cache after changes, and scoring a
//! pod then costs only the per-candidate update. Entries are keyed by node name and stamped with
//! the ledger version they were computed at, so a stale entry is never used.

use crate::hash::FnvMap;
use crate::ledger::{ClusterLedger, NodeLedger};

use super::{NodeFrag, TypicalPods};

/// Fragmentation state of every node, at the ledger version it was computed for.
#[derive(Debug, Clone, Default)]
pub struct FragCache {
    mix: TypicalPods,
    entries: FnvMap<String, (u64, NodeFrag)>,
    /// The ledger layout the entries were last fully checked against.
    layout: Option<u64>,
}

impl FragCache {
    /// Brings every node up to date with `ledger` and `mix`; forgets nodes no longer there.
    /// A different mix recomputes everything.
    pub fn refresh(&mut self, ledger: &ClusterLedger, mix: &TypicalPods) {
        if self.mix != *mix {
            self.mix = mix.clone();
            self.entries.clear();
        }
        self.entries.retain(|name, _| ledger.node(name).is_some());
        for node in ledger.nodes() {
            self.update(node);
        }
        self.layout = Some(ledger.layout());
    }

    /// The same as [`FragCache::refresh`], visiting only the nodes `ledger` reports changed
    /// since the last call ([`ClusterLedger::take_touched`]) unless the mix or the node set
    /// changed: a pod event costs one node's update, not a walk over thousands.
    pub fn refresh_touched(&mut self, ledger: &mut ClusterLedger, mix: &TypicalPods) {
        let touched = ledger.take_touched();
        if self.mix != *mix || self.layout != Some(ledger.layout()) {
            self.refresh(ledger, mix);
            return;
        }
        for i in touched {
            if let Some(node) = ledger.nodes().get(i) {
                self.update(node);
            }
        }
    }

    fn update(&mut self, node: &NodeLedger) {
        let fresh = self
            .entries
            .get(&node.name)
            .is_some_and(|(v, _)| *v == node.version);
        if !fresh {
            self.entries.insert(
                node.name.clone(),
                (node.version, NodeFrag::new(node, &self.mix)),
            );
        }
    }

    /// The state of `node`, if cached at its current version.
    pub fn get(&self, node: &NodeLedger) -> Option<&NodeFrag> {
        self.entries
            .get(&node.name)
            .filter(|(v, _)| *v == node.version)
            .map(|(_, state)| state)
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
        assert_eq!(cache.get(node), Some(&NodeFrag::new(node, &mix(500))));
        // A change to the node makes the entry stale until the next refresh.
        testing::hold(ledger.node_mut("a").unwrap(), "p", 0, 0, 700);
        assert_eq!(cache.get(ledger.node("a").unwrap()), None);
        cache.refresh(&ledger, &mix(500));
        let node = ledger.node("a").unwrap();
        assert_eq!(cache.get(node).map(|s| s.frag), Some(300.0));
        cache.refresh(&ledger, &mix(200));
        assert_eq!(cache.get(node).map(|s| s.frag), Some(0.0));
        ledger.remove_node("a");
        cache.refresh(&ledger, &mix(200));
        assert!(cache.entries.is_empty());
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
