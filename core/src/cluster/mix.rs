//! The typical request mix the fragmentation policy measures against, taken from what the
//! cluster's pods actually hold: one class per (GPU count, per-GPU memory, per-GPU compute).

use std::collections::HashMap;

use crate::frag::{self, ClassKey, TypicalPods};
use crate::ledger::ClusterLedger;

use super::{Cluster, MIX_COVERAGE};

impl Cluster {
    /// Recomputes the mix from every container's shares in the ledger. Cheap enough to run
    /// periodically; the fragmentation cache is recomputed only when the mix really changed.
    pub fn refresh_mix(&mut self) {
        self.mix = mix_of(&self.ledger);
    }
}

/// The mix of the shares `ledger` holds, per container (the DRA path's ledger too).
pub fn mix_of(ledger: &ClusterLedger) -> TypicalPods {
    let mut counts: HashMap<ClassKey, u64> = HashMap::new();
    for node in ledger.nodes() {
        for holding in node.holders().values() {
            for c in &holding.placement.containers {
                let Some(first) = c.shares.first() else {
                    continue;
                };
                let gpus = u32::try_from(c.shares.len()).unwrap_or(u32::MAX);
                *counts
                    .entry((0, first.core_milli, gpus, first.mem_mib, Vec::new()))
                    .or_default() += 1;
            }
        }
    }
    TypicalPods {
        cpu_per_gpu_milli: frag::cpu_per_gpu(ledger.nodes()),
        ..TypicalPods::from_counts(counts, MIX_COVERAGE)
    }
}
