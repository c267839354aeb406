//! The filter verb: which of the candidate nodes can take the pod, and exactly why the others
//! cannot. Nodes whose device plugin has gone quiet offer no GPU (DESIGN.md, `gpu-inventory`).

use std::collections::{BTreeMap, HashSet};

use tessera_core::cluster::Cluster;
use tessera_core::decide;
use tessera_core::request::{self, PodRequest, RequestContext};

use crate::state::ExtenderState;
use crate::wire::{ExtenderArgs, ExtenderFilterResult, NodeList, NodeName};

/// Serves one filter.
pub fn filter<'a>(state: &ExtenderState, mut args: ExtenderArgs<'a>) -> ExtenderFilterResult<'a> {
    state.remember(&args.pod);
    forget_earlier_bind(state, &args);
    let pod = match pod_request(state, &args) {
        Ok(pod) => pod,
        Err(error) => {
            return ExtenderFilterResult {
                error,
                ..Default::default()
            };
        }
    };
    let full_nodes = args.node_names.is_none() && args.nodes.is_some();
    let names = match args.node_names.take() {
        Some(names) => names,
        None => args.candidate_names(),
    };
    let verdict = {
        let cluster = state.read();
        let (names, stale) = split_stale(state, &cluster, &pod, names);
        let mut verdict = decide::filter_with(
            cluster.view(state.config().policy),
            &pod,
            names,
            &mut state.memo(),
        );
        verdict.failed.extend(stale);
        verdict
    };
    let verdict = match crate::dra_verbs::filter(state, &args.pod, verdict) {
        Ok(verdict) => verdict,
        Err(error) => {
            return ExtenderFilterResult {
                error,
                ..Default::default()
            };
        }
    };
    let (nodes, node_names) = match args.nodes {
        Some(list) if full_nodes => {
            let passed: HashSet<&str> = verdict.passed.iter().map(|p| p.as_ref()).collect();
            let items = list
                .items
                .into_iter()
                .filter(|n| {
                    n.metadata
                        .name
                        .as_deref()
                        .is_some_and(|name| passed.contains(name))
                })
                .collect();
            (
                Some(NodeList {
                    metadata: list.metadata,
                    items,
                }),
                None,
            )
        }
        _ => (None, Some(verdict.passed)),
    };
    ExtenderFilterResult {
        nodes,
        node_names,
        failed_nodes: verdict.failed,
        failed_and_unresolvable_nodes: verdict.unresolvable,
        error: String::new(),
    }
}

/// kube-scheduler places a pod anew only once its last bind is over (failed or timed out), so a
/// reservation still held for it (another term's bind held in flight, see
/// `tessera_core::cluster::Judge`) must not count against its own placement.
fn forget_earlier_bind(state: &ExtenderState, args: &ExtenderArgs<'_>) {
    let meta = &args.pod.metadata;
    let key = format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref().unwrap_or_default()
    );
    if state.read().reservations.is_pending(&key) {
        state.update(|c| c.reservations.cancel(&mut c.ledger, &key));
    }
}

pub(crate) fn pod_request(
    state: &ExtenderState,
    args: &ExtenderArgs<'_>,
) -> Result<PodRequest, String> {
    let ctx = RequestContext {
        translation: state.config().translation,
        largest_gpu_mib: None,
    };
    request::pod_request(&args.pod, ctx).map_err(|e| e.to_string())
}

/// Takes nodes with a stale inventory heartbeat out of the candidates of a GPU pod, with the
/// reason.
fn split_stale<'a>(
    state: &ExtenderState,
    cluster: &Cluster,
    pod: &PodRequest,
    names: Vec<NodeName<'a>>,
) -> (Vec<NodeName<'a>>, BTreeMap<NodeName<'a>, String>) {
    let mut stale = BTreeMap::new();
    let Some(max_age) = state.config().heartbeat_max_age else {
        return (names, stale);
    };
    if !pod.holds_gpus() {
        return (names, stale);
    }
    let now = crate::clock::unix_secs();
    let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    let fresh = names
        .into_iter()
        .filter(
            |name| match cluster.check_heartbeat(name.as_ref(), now, max_age) {
                Ok(()) => true,
                Err(why) => {
                    stale.insert(name.clone(), why.to_string());
                    false
                }
            },
        )
        .collect();
    (fresh, stale)
}
