//! Removes GPU assignments that no bind will complete (see
//! `tessera_core::cluster::Cluster::is_stale_assignment`). Binds now write the assignment in the
//! Binding itself, so it appears together with `nodeName`; an unbound pod naming GPUs is left
//! only by a release that patched the annotation before the Binding (a failed Binding, or a
//! replica killed or deposed in between), or by hand. Only the leader removes them, and another
//! term's only once its reservation timeout has passed (until then it is held as a bind in
//! flight). The removal carries the resourceVersion it was decided on, so a pod that changed
//! meanwhile (bound after all, or annotated anew) is left alone.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use tessera_core::cluster::PodFacts;
use tessera_core::keys;

use crate::slim_pod::SlimPod;
use crate::state::ExtenderState;

/// Field manager recorded on the removal patch (the extender's only pod patch).
pub const FIELD_MANAGER: &str = "tessera-extender";

/// Removes `pod`'s assignment in the background; the watch has judged it stale.
pub fn clear(client: &Client, pod: &Pod) {
    let meta = &pod.metadata;
    let (Some(namespace), Some(name), Some(version)) = (
        meta.namespace.clone(),
        meta.name.clone(),
        meta.resource_version.clone(),
    ) else {
        return;
    };
    // The answer (the whole pod) is decoded slim and dropped.
    let api: Api<SlimPod> = Api::namespaced(client.clone(), &namespace);
    let key = format!("{namespace}/{name}");
    tokio::spawn(async move {
        let patch = serde_json::json!({"metadata": {
            "resourceVersion": version,
            "annotations": {
                keys::ANNOTATION_GPU_ASSIGNMENT: null,
                keys::ANNOTATION_ASSIGNED_BY: null,
            },
        }});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        match api.patch(&name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => tracing::info!(
                pod = %key,
                "removed a GPU assignment whose bind never completed (the pod is not bound)"
            ),
            // Changed since: the next event decides again.
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {
                tracing::debug!(pod = %key, "stale GPU assignment changed before removal")
            }
            Err(e) => {
                tracing::warn!(pod = %key, error = %e, "could not remove a stale GPU assignment")
            }
        }
    });
}

/// Judges the pod `key` (`namespace/name`) again as the apiserver holds it now, and removes its
/// assignment if stale: a bind held in flight whose timeout just passed sends no watch event.
pub fn recheck(client: &Client, state: std::sync::Arc<ExtenderState>, key: String) {
    let Some((namespace, name)) = key.split_once('/') else {
        return;
    };
    let api: Api<SlimPod> = Api::namespaced(client.clone(), namespace);
    let (name, client) = (name.to_string(), client.clone());
    tokio::spawn(async move {
        let pod = match api.get_opt(&name).await {
            Ok(Some(pod)) => pod,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(pod = %key, error = %e, "could not re-check a GPU assignment");
                return;
            }
        };
        let facts = PodFacts::from_pod(&pod);
        let writer = state.leadership().writer();
        let judge = state.judge(writer.as_ref());
        if state.read().is_stale_assignment(&facts, &judge) {
            clear(&client, &pod);
        }
    });
}
