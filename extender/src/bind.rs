//! The bind verb: choose the pod's GPUs on the node kube-scheduler picked, reserve them in the
//! ledger, then write annotations and the Binding. Any failure after the reservation undoes it,
//! and the answer carries the error: kube-scheduler then retries the pod from filter. Success is
//! answered only once the Binding exists (an empty error for a pod left unbound is never retried).

use std::collections::BTreeMap;

use tessera_core::decide;
use tessera_core::ledger::Holding;
use tessera_core::request::PodRequest;

use crate::binder::BindTarget;
use crate::state::ExtenderState;
use crate::wire::{ExtenderBindingArgs, ExtenderBindingResult};
use tessera_core::annotations::Writer;
use tessera_core::cluster::Cluster;

/// Serves one bind.
pub async fn bind(state: &ExtenderState, args: ExtenderBindingArgs) -> ExtenderBindingResult {
    let key = format!("{}/{}", args.pod_namespace, args.pod_name);
    // Only the leader binds, and what it writes names its term (see `leader`).
    let Some(writer) = state.leadership().writer() else {
        state.metrics().bind_outcome("refused");
        return failed(format!(
            "pod {key}: this extender replica is not the leader (the Lease is held by {}); retry",
            state.leadership().holder().as_deref().unwrap_or("nobody")
        ));
    };
    // The UID ties the bind to the pod filtered: the apiserver binds only the pod that has it
    // (the Binding's precondition), and it must be the pod the filter saw under this name.
    if args.pod_uid.is_empty() {
        state.metrics().bind_outcome("refused");
        return failed(format!("pod {key}: a bind must name the pod's UID"));
    }
    let Some((filtered, request)) = state.take_pending(&args.pod_uid) else {
        state.metrics().bind_outcome("refused");
        return failed(format!(
            "pod {key} (uid {}) was not filtered by this extender",
            args.pod_uid
        ));
    };
    if filtered != key {
        state.keep(&args.pod_uid, &filtered, request);
        state.metrics().bind_outcome("refused");
        return failed(format!(
            "pod {key} (uid {}): that UID was filtered as pod {filtered}",
            args.pod_uid
        ));
    }
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            state.metrics().bind_outcome("refused");
            return failed(e);
        }
    };
    let deadline = state
        .now_ms()
        .saturating_add(state.config().reservation_timeout.as_millis() as u64);
    let reserved = state.update(|c| reserve(c, state, &request, &key, &args, deadline, writer));
    let target = match reserved {
        Ok(target) => target,
        Err(why) => {
            state.keep(&args.pod_uid, &key, Ok(request));
            state.metrics().bind_outcome("refused");
            return failed(format!("cannot bind {key} to {}: {why}", args.node));
        }
    };
    match state.binder().bind(target).await {
        Ok(()) => {
            state.metrics().bind_outcome("ok");
            ExtenderBindingResult::default()
        }
        Err(why) => {
            state.update(|c| {
                c.reservations.cancel(&mut c.ledger, &key);
                c.forget_member(&key);
            });
            state.keep(&args.pod_uid, &key, Ok(request));
            state.metrics().bind_outcome("failed");
            failed(format!("binding {key} to {}: {why}", args.node))
        }
    }
}

fn failed(error: String) -> ExtenderBindingResult {
    ExtenderBindingResult { error }
}

/// Chooses and reserves the GPUs (pods without GPU requests reserve nothing).
fn reserve(
    c: &mut Cluster,
    state: &ExtenderState,
    request: &PodRequest,
    key: &str,
    args: &ExtenderBindingArgs,
    deadline_ms: u64,
    writer: Writer,
) -> Result<BindTarget, String> {
    let mut annotations = BTreeMap::new();
    // kube-scheduler binds a pod anew only once its last bind failed: an earlier term's bind of
    // it that this replica held as in flight is over.
    c.reservations.cancel(&mut c.ledger, key);
    // kube-scheduler filters the next pod while this bind is in flight, so the group rule is
    // checked again here, and the member counts from now on (undone if the bind fails).
    if let Some(group) = &request.group
        && let Some(node) = c.ledger.node(&args.node)
    {
        c.spread.check(group, node).map_err(|e| e.to_string())?;
    }
    if request.holds_gpus() {
        let (index, placement) = decide::assign(c.view(state.config().policy), request, &args.node)
            .map_err(|e| e.to_string())?;
        let assignment = c.ledger.nodes()[index].to_assignment(&placement);
        annotations = decide::bind_annotations(&assignment, &crate::clock::now_rfc3339(), &writer);
        let holding = Holding {
            placement,
            cpu_milli: 0,
            mem_mib: 0,
            run_as: request.run_as,
        };
        c.reservations
            .reserve(&mut c.ledger, key, index, holding, deadline_ms)
            .map_err(|e| e.to_string())?;
    }
    if let Some(group) = request.group.clone() {
        c.record_member(key, group, &args.node);
    }
    Ok(BindTarget {
        namespace: args.pod_namespace.clone(),
        name: args.pod_name.clone(),
        uid: args.pod_uid.clone(),
        node: args.node.clone(),
        annotations,
        writer,
    })
}
