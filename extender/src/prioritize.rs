//! The prioritize verb: every candidate node on kube-scheduler's 0–10 scale, spreading first for
//! group members, then the policy. kube-scheduler ignores prioritize errors, so a pod whose
//! request is invalid simply ranks every node 0.
//!
//! The answer is sparse: kube-scheduler adds an extender's score to the nodes it lists and
//! nothing to the others, and the same amount added to every candidate changes no choice, so
//! each score is sent less the lowest, and nodes at the lowest are left out. A pod every node
//! ranks alike (no GPU, no group) gets an empty list; kube-scheduler then decodes nothing
//! instead of an entry per node, which measured a tenth of its CPU for such pods.

use tessera_core::decide;

use crate::filter::pod_request;
use crate::state::ExtenderState;
use crate::wire::{ExtenderArgs, HostPriority, NodeName};

/// Serves one prioritize.
pub fn prioritize<'a>(state: &ExtenderState, mut args: ExtenderArgs<'a>) -> Vec<HostPriority<'a>> {
    let mut names = match args.node_names.take() {
        Some(names) => names,
        None => args.candidate_names(),
    };
    if let Some(ranked) = crate::dra_verbs::prioritize(state, &args.pod, &mut names) {
        return sparse(ranked);
    }
    let ranked = match pod_request(state, &args) {
        Ok(pod) => decide::prioritize_with(
            state.read().view(state.config().policy),
            &pod,
            names,
            &mut state.memo(),
        ),
        Err(_) => Vec::new(),
    };
    sparse(ranked)
}

/// The nodes above the lowest score, by how much.
fn sparse(ranked: Vec<(NodeName<'_>, i64)>) -> Vec<HostPriority<'_>> {
    let Some(lowest) = ranked.iter().map(|(_, score)| *score).min() else {
        return Vec::new();
    };
    ranked
        .into_iter()
        .filter(|(_, score)| *score > lowest)
        .map(|(host, score)| HostPriority {
            host,
            score: score - lowest,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(scores: &[(&'static str, i64)]) -> Vec<(NodeName<'static>, i64)> {
        scores.iter().map(|(n, s)| ((*n).into(), *s)).collect()
    }

    /// kube-scheduler's sum for each candidate: the listed score, or 0.
    fn as_added(candidates: &[&str], sent: &[HostPriority<'_>]) -> Vec<i64> {
        candidates
            .iter()
            .map(|c| sent.iter().find(|h| h.host == *c).map_or(0, |h| h.score))
            .collect()
    }

    #[test]
    fn the_answer_keeps_every_difference_between_nodes() {
        let scores = [("a", 3), ("b", 10), ("c", 3), ("d", 7)];
        let sent = sparse(ranked(&scores));
        assert_eq!(sent.len(), 2, "only the nodes above the lowest");
        let added = as_added(&["a", "b", "c", "d"], &sent);
        for (i, j) in [(0, 1), (0, 2), (1, 3), (2, 3), (0, 3)] {
            assert_eq!(
                added[i] - added[j],
                scores[i].1 - scores[j].1,
                "{} against {}",
                scores[i].0,
                scores[j].0
            );
        }
    }

    #[test]
    fn nodes_ranked_alike_or_none_send_nothing() {
        assert!(sparse(ranked(&[("a", 5), ("b", 5)])).is_empty());
        assert!(sparse(ranked(&[])).is_empty());
    }
}
