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
            let fresh = self
                .entries
                .get(&node.name)
                .is_some_and(|(v, _)| *v == node.version);
            if !fresh {
                self.entries
                    .insert(node.name.clone(), (node.version, NodeFrag::new(node, mix)));
            }
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
}
