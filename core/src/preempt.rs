//! Preemption at GPU-share granularity (DESIGN.md, "Preemption"): when a pod does not fit a
//! node, the fewest, lowest-priority shares whose release lets it fit, preferably all on one GPU.
//!
//! For every GPU of the node (and once for the node as a whole, for pods that need several
//! GPUs), lower-priority holders are released in order of increasing priority and decreasing
//! share until the pod fits; then each is given back, highest priority first, if the pod still
//! fits without evicting it. The smallest such set wins, then the one of lowest priority.

use std::collections::BTreeSet;

use crate::cluster::Cluster;
use crate::fit::{GpuChoice, try_choose};
use crate::ledger::{Holding, NodeLedger};
use crate::request::PodRequest;

/// Why no set of victims on the node helps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoVictims {
    /// The node is not in the ledger.
    #[error("node {node} has no Tessera GPU inventory")]
    UnknownNode {
        /// Node name.
        node: String,
    },
    /// Even evicting every lower-priority share would not make room.
    #[error("evicting every lower-priority GPU share on node {node} would not make room")]
    NotEnough {
        /// Node name.
        node: String,
    },
}

/// A victim set and how it ranks (smaller is better).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    count: usize,
    highest: i32,
    sum: i64,
}

/// The GPU-share victims (pod keys) on `node` that let `pod` of `priority` fit, given that
/// kube-scheduler already evicts `already` (pod keys; kept, and counted as freed).
/// Returns only the additional victims; empty when `already` suffices.
pub fn victims(
    cluster: &Cluster,
    pod: &PodRequest,
    priority: i32,
    node: &str,
    already: &BTreeSet<String>,
) -> Result<Vec<String>, NoVictims> {
    let Some(ledger) = cluster.ledger.node(node) else {
        return Err(NoVictims::UnknownNode {
            node: node.to_string(),
        });
    };
    let mut base = ledger.clone();
    for key in already {
        base.release(key);
    }
    if fits(&base, pod) {
        return Ok(Vec::new());
    }
    let priority_of = |key: &str| cluster.pod(key).map(|f| f.priority);
    // Holders that may be evicted: known pods of lower priority (a share reserved by a bind in
    // flight has no pod yet and is never a victim).
    let mut evictable: Vec<(String, i32, u64)> = base
        .holders()
        .iter()
        .filter_map(|(key, h)| {
            let p = priority_of(key)?;
            (p < priority).then(|| (key.clone(), p, weight(h)))
        })
        .collect();
    evictable.sort_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));

    let mut anchors: Vec<Option<usize>> = (0..base.gpus.len()).map(Some).collect();
    anchors.push(None);
    let mut best: Option<(Rank, Vec<String>)> = None;
    for anchor in anchors {
        let on_anchor: Vec<&(String, i32, u64)> = evictable
            .iter()
            .filter(|(key, _, _)| {
                anchor.is_none_or(|g| {
                    base.holders()
                        .get(key)
                        .is_some_and(|h| h.placement.shares().any(|s| s.gpu == g))
                })
            })
            .collect();
        let Some(set) = evict_until_fits(&base, pod, &on_anchor) else {
            continue;
        };
        let rank = Rank {
            count: set.len(),
            highest: set.iter().map(|(_, p)| *p).max().unwrap_or(i32::MIN),
            sum: set.iter().map(|(_, p)| i64::from(*p)).sum(),
        };
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((rank, set.into_iter().map(|(k, _)| k).collect()));
        }
    }
    best.map(|(_, mut keys)| {
        keys.sort();
        keys
    })
    .ok_or_else(|| NoVictims::NotEnough {
        node: node.to_string(),
    })
}

fn fits(node: &NodeLedger, pod: &PodRequest) -> bool {
    try_choose(node, pod, GpuChoice::BestFit).is_some()
}

/// Size of a holding, for evicting big shares first (fewer victims).
fn weight(h: &Holding) -> u64 {
    h.placement
        .shares()
        .map(|s| u64::from(s.core_milli) + s.mem_mib / 16)
        .sum()
}

/// Evicts in order until `pod` fits, then gives back whatever is not needed.
fn evict_until_fits(
    base: &NodeLedger,
    pod: &PodRequest,
    order: &[&(String, i32, u64)],
) -> Option<Vec<(String, i32)>> {
    let mut scratch = base.clone();
    let mut evicted: Vec<(String, i32, Holding)> = Vec::new();
    for (key, p, _) in order {
        if let Some(h) = scratch.release(key) {
            evicted.push((key.clone(), *p, h));
        }
        if fits(&scratch, pod) {
            break;
        }
    }
    if !fits(&scratch, pod) {
        return None;
    }
    // Reprieve: highest priority first, keep a victim's share if the pod fits anyway.
    evicted.sort_by_key(|e| std::cmp::Reverse(e.1));
    let mut victims = Vec::new();
    for (key, p, holding) in evicted {
        let mut trial = scratch.clone();
        if trial.apply(&key, holding).is_ok() && fits(&trial, pod) {
            scratch = trial;
        } else {
            victims.push((key, p));
        }
    }
    Some(victims)
}

#[cfg(test)]
mod tests;
