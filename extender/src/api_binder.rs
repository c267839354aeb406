//! The production binder: patches the pod's annotations, then creates its Binding, through the
//! apiserver. The patch carries the pod's UID, so a pod deleted and re-created under the same
//! name meanwhile is refused rather than given another pod's GPUs.

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

use crate::binder::{BindFuture, BindTarget, Binder};

/// Field manager recorded on the annotation patch.
pub const FIELD_MANAGER: &str = "tessera-extender";

/// Binds through the apiserver.
#[derive(Clone)]
pub struct ApiBinder {
    client: Client,
}

impl ApiBinder {
    /// A binder using `client`.
    pub fn new(client: Client) -> Self {
        ApiBinder { client }
    }

    async fn bind_now(&self, target: BindTarget) -> Result<(), String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &target.namespace);
        if !target.annotations.is_empty() {
            let patch = serde_json::json!({
                "metadata": { "uid": target.uid, "annotations": target.annotations }
            });
            pods.patch(
                &target.name,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PatchParams::default()
                },
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| format!("patching annotations: {e}"))?;
        }
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(target.name.clone()),
                namespace: Some(target.namespace.clone()),
                uid: Some(target.uid.clone()),
                ..Default::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(target.node.clone()),
                ..Default::default()
            },
        };
        pods.create_subresource::<_, serde_json::Value>(
            "binding",
            &target.name,
            &PostParams::default(),
            &binding,
        )
        .await
        .map_err(|e| format!("creating the Binding: {e}"))?;
        Ok(())
    }
}

impl Binder for ApiBinder {
    fn bind(&self, target: BindTarget) -> BindFuture<'_> {
        Box::pin(self.bind_now(target))
    }
}
