//! The extender's answers for a claim pod: the very `decide` filter and prioritize of the
//! device-plugin path, over the DRA ledger, with reasons that say which path refused.

use crate::decide::{self, Filtered, Memo};
use crate::request::PodRequest;
use crate::score::Policy;

use super::{DRIVER, DraCluster};

/// Filters `nodes` for a claim pod asking `pod` (its new demand, see
/// [`DraCluster::pod_request`]).
pub fn filter_with<N: AsRef<str> + Ord>(
    dra: &DraCluster,
    policy: Policy,
    pod: &PodRequest,
    nodes: Vec<N>,
    memo: &mut Memo,
) -> Filtered<N> {
    let mut out = decide::filter_with(dra.view(policy), pod, nodes, memo);
    for (name, why) in out.unresolvable.iter_mut() {
        *why = format!(
            "node {} publishes no GPU of driver {DRIVER} (no ResourceSlice)",
            name.as_ref()
        );
    }
    for why in out.failed.values_mut() {
        *why = format!("{DRIVER} claim: {why}");
    }
    out
}

/// Scores `nodes` for a claim pod on 0–10 by `policy`, as any other GPU pod.
pub fn prioritize_with<N: AsRef<str>>(
    dra: &DraCluster,
    policy: Policy,
    pod: &PodRequest,
    nodes: Vec<N>,
    memo: &mut Memo,
) -> Vec<(N, i64)> {
    decide::prioritize_with(dra.view(policy), pod, nodes, memo)
}
