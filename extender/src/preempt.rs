//! The preempt verb: for each candidate node kube-scheduler proposes, its victims plus the
//! GPU shares (fewest, lowest priority) that must also go for the pod to fit; nodes where no
//! eviction helps are left out. Victims kube-scheduler chose for its own resources are kept.

use std::collections::{BTreeSet, HashMap};

use tessera_core::preempt;
use tessera_core::request::{self, RequestContext};

use crate::state::ExtenderState;
use crate::wire::{ExtenderPreemptionArgs, ExtenderPreemptionResult, MetaPod, MetaVictims};

/// Serves one preempt.
pub fn preempt(state: &ExtenderState, args: ExtenderPreemptionArgs) -> ExtenderPreemptionResult {
    let ctx = RequestContext {
        translation: state.config().translation,
        largest_gpu_mib: None,
    };
    let candidates: Vec<(String, MetaVictims)> =
        match (args.node_name_to_meta_victims, args.node_name_to_victims) {
            (Some(meta), _) => meta.into_iter().collect(),
            (None, Some(full)) => full
                .into_iter()
                .map(|(node, v)| {
                    let pods = v
                        .pods
                        .into_iter()
                        .filter_map(|p| p.metadata.uid)
                        .map(|uid| MetaPod { uid })
                        .collect();
                    (
                        node,
                        MetaVictims {
                            pods,
                            num_pdb_violations: v.num_pdb_violations,
                        },
                    )
                })
                .collect(),
            (None, None) => Vec::new(),
        };
    let Ok(pod) = request::pod_request(&args.pod, ctx) else {
        // No error field in this answer: an invalid pod simply gets no candidates.
        return ExtenderPreemptionResult::default();
    };
    if !pod.holds_gpus() {
        // Nothing of ours to free: kube-scheduler's own choice stands.
        return ExtenderPreemptionResult {
            node_name_to_meta_victims: candidates.into_iter().collect(),
        };
    }
    let priority = args.pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
    let cluster = state.read();
    let by_uid: HashMap<&str, &str> = cluster
        .pods()
        .map(|f| (f.uid.as_str(), f.key.as_str()))
        .collect();
    let mut out = ExtenderPreemptionResult::default();
    for (node, mut victims) in candidates {
        let already: BTreeSet<String> = victims
            .pods
            .iter()
            .filter_map(|m| by_uid.get(m.uid.as_str()).map(|k| k.to_string()))
            .collect();
        match preempt::victims(&cluster, &pod, priority, &node, &already) {
            Ok(extra) => {
                for key in extra {
                    if let Some(f) = cluster.pod(&key) {
                        victims.pods.push(MetaPod { uid: f.uid.clone() });
                    }
                }
                out.node_name_to_meta_victims.insert(node, victims);
            }
            Err(why) => tracing::debug!(node, "preemption cannot help: {why}"),
        }
    }
    out
}
