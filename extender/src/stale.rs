//! Removes GPU assignments that no bind will complete (see
//! `tessera_core::cluster::Cluster::is_stale_assignment`): bind writes the annotation before
//! the Binding, so a failed Binding or a crash in between leaves an unbound pod naming GPUs.
//! The removal carries the resourceVersion it was decided on, so a pod that changed meanwhile
//! (bound after all, or annotated anew by a later bind) is left alone. "No reservation pending"
//! means "no bind in flight" because one extender makes every reservation (the Deployment runs a
//! single replica) and a reservation outlives any bind call (`--reservation-timeout`, 120 s).

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use tessera_core::keys;

use crate::api_binder::FIELD_MANAGER;

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
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let key = format!("{namespace}/{name}");
    tokio::spawn(async move {
        let patch = serde_json::json!({"metadata": {
            "resourceVersion": version,
            "annotations": {keys::ANNOTATION_GPU_ASSIGNMENT: null},
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
