//! What the scheduler extender answers, as pure functions over the cluster state: which of the
//! nodes kube-scheduler sent pass (and exactly why the others do not), how they rank on
//! kube-scheduler's 0–10 scale, and which GPUs a pod gets when it is bound. The extender crate decodes, calls these, encodes.

use std::collections::BTreeMap;

mod memo;

pub use memo::{MAX_SHAPES, Memo, ShapeId};

use crate::affinity::Spread;
use crate::annotations::{self, Assignment, Writer};
use crate::fit::{self, GpuChoice};
use crate::keys;
use crate::ledger::{ClusterLedger, Placement};
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

/// The filter verdict. `N` is how the caller holds node names: owned, or borrowed from the
/// request body so that thousands of names are not copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filtered<N = String> {
    /// Nodes that can take the pod, in the order given.
    pub passed: Vec<N>,
    /// Nodes that cannot now, with the reason (preemption might help).
    pub failed: BTreeMap<N, String>,
    /// Nodes that never can, with the reason (no GPU inventory).
    pub unresolvable: BTreeMap<N, String>,
}

impl<N> Default for Filtered<N> {
    fn default() -> Self {
        Filtered {
            passed: Vec::new(),
            failed: BTreeMap::new(),
            unresolvable: BTreeMap::new(),
        }
    }
}

/// Filters `nodes` for `pod`.
pub fn filter(view: View<'_>, pod: &PodRequest, nodes: &[String]) -> Filtered {
    filter_with(view, pod, nodes.to_vec(), &mut Memo::default())
}

/// Filters `nodes` for `pod`, reusing and filling `memo`; the names move into the verdict.
pub fn filter_with<N: AsRef<str> + Ord>(
    view: View<'_>,
    pod: &PodRequest,
    nodes: Vec<N>,
    memo: &mut Memo,
) -> Filtered<N> {
    let mut out = Filtered::default();
    if pod.is_pass_through() {
        out.passed = nodes;
        return out;
    }
    let shape = memo.shape(view.policy, view.ctx.mix, view.ledger, pod);
    out.passed.reserve(nodes.len());
    for name in nodes {
        match verdict(view, pod, name.as_ref(), memo, shape) {
            Verdict::Pass => out.passed.push(name),
            Verdict::Fail(why) => {
                out.failed.insert(name, why);
            }
            Verdict::Never(why) => {
                out.unresolvable.insert(name, why);
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

fn verdict(
    view: View<'_>,
    pod: &PodRequest,
    name: &str,
    memo: &mut Memo,
    shape: ShapeId,
) -> Verdict {
    let Some(index) = view.ledger.node_index(name) else {
        return if !pod.holds_gpus() {
            // A spreading-only pod on a node we do not track: nothing to object to.
            Verdict::Pass
        } else {
            Verdict::Never(format!("node {name} has no Tessera GPU inventory"))
        };
    };
    let node = &view.ledger.nodes()[index];
    if node.gpus.is_empty() && pod.holds_gpus() {
        return Verdict::Never(format!("node {name} has no Tessera GPU inventory"));
    }
    if let Some(group) = &pod.group
        && let Err(unfit) = view.spread.check(group, node)
    {
        return Verdict::Fail(unfit.to_string());
    }
    if !pod.holds_gpus() {
        return Verdict::Pass;
    }
    // Fit is the same for every policy: no need to score here, prioritize does that.
    let why = memo.fit(shape, index, node, || {
        fit::try_choose(node, pod, GpuChoice::BestFit)
            .is_none()
            .then(|| fit::explain(node, pod, GpuChoice::BestFit).to_string())
    });
    match why {
        None => Verdict::Pass,
        Some(why) => Verdict::Fail(why.to_string()),
    }
}

/// Scores `nodes` for `pod` on 0–10: spreading first for group members, then the policy.
/// Nodes the pod does not fit score 0.
pub fn prioritize(view: View<'_>, pod: &PodRequest, nodes: &[String]) -> Vec<(String, i64)> {
    prioritize_with(view, pod, nodes.to_vec(), &mut Memo::default())
}

/// Scores `nodes` for `pod`, reusing and filling `memo`; the names move into the answer.
pub fn prioritize_with<N: AsRef<str>>(
    view: View<'_>,
    pod: &PodRequest,
    nodes: Vec<N>,
    memo: &mut Memo,
) -> Vec<(N, i64)> {
    let shape = memo.shape(view.policy, view.ctx.mix, view.ledger, pod);
    let keys: Vec<(f64, f64)> = nodes
        .iter()
        .map(|name| {
            let Some(index) = view.ledger.node_index(name.as_ref()) else {
                return (0.0, f64::NEG_INFINITY);
            };
            let node = &view.ledger.nodes()[index];
            let spread = pod
                .group
                .as_ref()
                .map_or(0.0, |g| view.spread.score(g, node));
            let policy = if !pod.holds_gpus() {
                0.0
            } else {
                memo.score(shape, index, node, || {
                    score::score_value(view.policy, node, pod, view.ctx)
                        .unwrap_or(f64::NEG_INFINITY)
                })
            };
            (spread, policy)
        })
        .collect();
    nodes
        .into_iter()
        .zip(score::to_extender_scale(&keys))
        .collect()
}

/// Why a bind cannot go ahead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindRefusal {
    /// The node is not in the ledger.
    #[error("node {node} has no Tessera GPU inventory")]
    UnknownNode {
        /// Node name.
        node: String,
    },
    /// The pod no longer fits the node (another bind took the share first).
    #[error("{0}")]
    Unfit(#[from] fit::Unfit),
}

/// The GPUs `pod` gets on `node` at bind time, chosen by the policy, with the node's index.
pub fn assign(
    view: View<'_>,
    pod: &PodRequest,
    node: &str,
) -> Result<(usize, Placement), BindRefusal> {
    let index = view
        .ledger
        .node_index(node)
        .ok_or_else(|| BindRefusal::UnknownNode {
            node: node.to_string(),
        })?;
    let scored = score::score(view.policy, &view.ledger.nodes()[index], pod, view.ctx)?;
    Ok((index, scored.placement))
}

/// The pod annotations written before the Binding: the assignment, the bind time (RFC 3339),
/// the leader and term that wrote them, and `bind-phase: allocating`, which the device plugin's
/// Allocate looks for.
pub fn bind_annotations(
    assignment: &Assignment,
    bind_time_rfc3339: &str,
    writer: &Writer,
) -> BTreeMap<String, String> {
    [
        (keys::ANNOTATION_ASSIGNED_BY, writer.encode()),
        (
            keys::ANNOTATION_GPU_ASSIGNMENT,
            annotations::encode_assignment(assignment),
        ),
        (keys::ANNOTATION_BIND_TIME, bind_time_rfc3339.to_string()),
        (
            keys::ANNOTATION_BIND_PHASE,
            keys::BIND_PHASE_ALLOCATING.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[cfg(test)]
mod tests;
