//! The production binder: creates the pod's Binding through the apiserver, with the assignment
//! annotations in it. The Binding carries the pod's UID, so a pod deleted and re-created under the
//! same name meanwhile is refused rather than given another pod's GPUs.

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};

use std::sync::Arc;

use crate::binder::{BindFuture, BindTarget, Binder};
use crate::leader::Leadership;

/// Binds through the apiserver.
#[derive(Clone)]
pub struct ApiBinder {
    client: Client,
    fence: Option<Arc<Leadership>>,
}

impl ApiBinder {
    /// A binder using `client`.
    pub fn new(client: Client) -> Self {
        ApiBinder {
            client,
            fence: None,
        }
    }

    /// Checks before each write that this replica still leads in the bind's term.
    pub fn with_fence(mut self, leadership: Arc<Leadership>) -> Self {
        self.fence = Some(leadership);
        self
    }

    fn still_leading(&self, target: &BindTarget) -> Result<(), String> {
        match &self.fence {
            Some(l) if l.writer().as_ref() != Some(&target.writer) => Err(format!(
                "this replica no longer leads term {} (the Lease is held by {})",
                target.writer.term,
                l.holder().as_deref().unwrap_or("nobody")
            )),
            _ => Ok(()),
        }
    }

    /// One write: the Binding carries the assignment annotations, which the apiserver copies
    /// onto the pod in the same update that sets `nodeName`, under the UID precondition from
    /// `metadata.uid` (`BindingREST.Create` → `assignPod`). The assignment and the node therefore
    /// appear together; a pod is never seen bound without its assignment or unbound with one.
    async fn bind_now(&self, target: BindTarget) -> Result<(), String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &target.namespace);
        self.still_leading(&target)?;
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(target.name.clone()),
                namespace: Some(target.namespace.clone()),
                uid: Some(target.uid.clone()),
                annotations: (!target.annotations.is_empty()).then_some(target.annotations),
                ..Default::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(target.node.clone()),
                ..Default::default()
            },
        };
        // The answer is a small Status; nothing in it is needed.
        pods.create_subresource::<_, serde::de::IgnoredAny>(
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
