//! The prioritize verb: every candidate node on kube-scheduler's 0–10 scale, spreading first for
//! group members, then the policy. kube-scheduler ignores prioritize errors, so a pod whose
//! request is invalid simply ranks every node 0.

use tessera_core::decide;

use crate::filter::pod_request;
use crate::state::ExtenderState;
use crate::wire::{ExtenderArgs, HostPriority};

/// Serves one prioritize.
pub fn prioritize<'a>(state: &ExtenderState, mut args: ExtenderArgs<'a>) -> Vec<HostPriority<'a>> {
    let mut names = match args.node_names.take() {
        Some(names) => names,
        None => args.candidate_names(),
    };
    if let Some(ranked) = crate::dra_verbs::prioritize(state, &args.pod, &mut names) {
        return ranked
            .into_iter()
            .map(|(host, score)| HostPriority { host, score })
            .collect();
    }
    let ranked = match pod_request(state, &args) {
        Ok(pod) => decide::prioritize_with(
            state.read().view(state.config().policy),
            &pod,
            names,
            &mut state.memo(),
        ),
        Err(_) => names.into_iter().map(|n| (n, 0)).collect(),
    };
    ranked
        .into_iter()
        .map(|(host, score)| HostPriority { host, score })
        .collect()
}
