//! Filter and prioritize for claim-bearing pods: a pod whose `resourceClaims` ask the
//! `gpu.tessera.dev` DeviceClass for shares is fitted and ranked against the DRA path's GPUs by
//! the configured policy, so its node is Tessera's choice; kube-scheduler's DRA allocator then
//! picks the GPU inside that node. Bind needs nothing of its own: such a pod holds no
//! device-plugin share, so it gets the plain Binding (the allocator wrote the allocation at
//! PreBind). Pods naming no claim are answered as before.

use k8s_openapi::api::core::v1::Pod;
use tessera_core::decide::Filtered;
use tessera_core::dra::{self, PodClaims};
use tessera_core::request::PodRequest;

use crate::state::ExtenderState;
use crate::wire::NodeName;

/// The pod's new demand on the DRA path (`None`: not a claim pod, or nothing new to place), or
/// why it cannot be told yet.
pub fn claim_request(state: &ExtenderState, pod: &Pod) -> Result<Option<PodRequest>, String> {
    let claims = PodClaims::from_pod(pod);
    if claims.is_empty() {
        return Ok(None);
    }
    state
        .dra()
        .read()
        .pod_request(&claims)
        .map_err(|e| e.to_string())
}

/// Narrows what the device-plugin path's filter passed to the nodes whose DRA GPUs can take the
/// pod's claims; an unknown claim or template fails the whole request (kube-scheduler retries).
pub fn filter<'a>(
    state: &ExtenderState,
    pod: &Pod,
    verdict: Filtered<NodeName<'a>>,
) -> Result<Filtered<NodeName<'a>>, String> {
    let Some(request) = claim_request(state, pod)? else {
        return Ok(verdict);
    };
    let dra = state.dra();
    let mut out = dra::filter_with(
        &dra.read(),
        state.config().policy,
        &request,
        verdict.passed,
        &mut dra.memo(),
    );
    out.failed.extend(verdict.failed);
    out.unresolvable.extend(verdict.unresolvable);
    Ok(out)
}

/// The policy's scores for a claim pod, or `None` for any other pod.
pub fn prioritize<'a>(
    state: &ExtenderState,
    pod: &Pod,
    names: &mut Vec<NodeName<'a>>,
) -> Option<Vec<(NodeName<'a>, i64)>> {
    let request = claim_request(state, pod).ok().flatten()?;
    let dra = state.dra();
    let names = std::mem::take(names);
    Some(dra::prioritize_with(
        &dra.read(),
        state.config().policy,
        &request,
        names,
        &mut dra.memo(),
    ))
}
