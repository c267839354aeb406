//! What the scheduler extender answers, as pure functions over the cluster state: which of the
//! nodes kube-scheduler sent pass (and exactly why the others do not), and how they rank on
//! kube-scheduler's 0–10 scale. The extender crate decodes, calls these, encodes.

use std::collections::BTreeMap;

use crate::affinity::Spread;
use crate::fit::{self, GpuChoice};
use crate::ledger::ClusterLedger;
use crate::request::PodRequest;
use crate::score::{self, Policy, ScoreContext};

/// The cluster as the extender sees it.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// GPU accounting.
    pub ledger: &'a ClusterLedger,
    /// Where group members are.
    pub spread: &'a Spread,
    /// Scoring policy.
    pub policy: Policy,
    /// Scoring context (typical mix, fragmentation cache).
    pub ctx: ScoreContext<'a>,
}

/// The filter verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filtered {
    /// Nodes that can take the pod, in the order given.
    pub passed: Vec<String>,
    /// Nodes that cannot now, with the reason (preemption might help).
    pub failed: BTreeMap<String, String>,
    /// Nodes that never can, with the reason (no GPU inventory).
    pub unresolvable: BTreeMap<String, String>,
}

/// Filters `nodes` for `pod`.
pub fn filter(view: View<'_>, pod: &PodRequest, nodes: &[String]) -> Filtered {
    let mut out = Filtered::default();
    if pod.is_pass_through() {
        out.passed = nodes.to_vec();
        return out;
    }
    for name in nodes {
        match verdict(view, pod, name) {
            Verdict::Pass => out.passed.push(name.clone()),
            Verdict::Fail(why) => {
                out.failed.insert(name.clone(), why);
            }
            Verdict::Never(why) => {
                out.unresolvable.insert(name.clone(), why);
            }
        }
    }
    out
}

enum Verdict {
    Pass,
    Fail(String),
    Never(String),
}

fn verdict(view: View<'_>, pod: &PodRequest, name: &str) -> Verdict {
    let Some(node) = view.ledger.node(name) else {
        return if pod.containers.is_empty() {
            // A spreading-only pod on a node we do not track: nothing to object to.
            Verdict::Pass
        } else {
            Verdict::Never(format!("node {name} has no Tessera GPU inventory"))
        };
    };
    if let Some(group) = &pod.group
        && let Err(unfit) = view.spread.check(group, node)
    {
        return Verdict::Fail(unfit.to_string());
    }
    if pod.containers.is_empty() || score::score_value(view.policy, node, pod, view.ctx).is_some() {
        return Verdict::Pass;
    }
    Verdict::Fail(fit::explain(node, pod, GpuChoice::BestFit).to_string())
}

/// Scores `nodes` for `pod` on 0–10: spreading first for group members, then the policy.
/// Nodes the pod does not fit score 0.
pub fn prioritize(view: View<'_>, pod: &PodRequest, nodes: &[String]) -> Vec<(String, i64)> {
    let keys: Vec<(f64, f64)> = nodes
        .iter()
        .map(|name| {
            let Some(node) = view.ledger.node(name) else {
                return (0.0, f64::NEG_INFINITY);
            };
            let spread = pod
                .group
                .as_ref()
                .map_or(0.0, |g| view.spread.score(g, node));
            let policy = if pod.containers.is_empty() {
                0.0
            } else {
                score::score_value(view.policy, node, pod, view.ctx).unwrap_or(f64::NEG_INFINITY)
            };
            (spread, policy)
        })
        .collect();
    nodes
        .iter()
        .cloned()
        .zip(score::to_extender_scale(&keys))
        .collect()
}

#[cfg(test)]
mod tests;
