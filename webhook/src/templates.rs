//! The claim-template controller: `/mutate-dra` points a pod's GPU shares at ResourceClaimTemplates
//! (`tessera-share-…`) but, having no side effects, makes none; this makes the ones a pod names
//! in its namespace. kube's resourceclaim controller retries the pod until its template exists.
//!
//! Only pods the rewrite labelled (`tessera.dev/gpu-path=dra`) are watched. A template is created
//! and an existing one (made by the other replica, or before) is left as it is: both replicas
//! may run this. Which templates, and what they hold, is decided in `tessera_inject::dra`.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::resource::v1::ResourceClaimTemplate;
use kube::api::PostParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tessera_inject::dra;
use tessera_kernel::keys;
use thiserror::Error;
use tracing::{debug, info, warn};

/// Why a pod's templates could not all be made.
#[derive(Debug, Error)]
#[error("pod {namespace}/{pod}: creating ResourceClaimTemplate {template}: {source}")]
pub struct TemplateError {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod: String,
    /// The template.
    pub template: String,
    /// What the apiserver said.
    #[source]
    pub source: kube::Error,
}

/// How soon a pod whose template could not be made is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// Runs the controller until the watch ends (it does not: errors are retried).
pub async fn run(client: kube::Client) {
    let selector = format!("{}={}", keys::LABEL_GPU_PATH, keys::GPU_PATH_DRA);
    let pods: Api<Pod> = Api::all(client.clone());
    Controller::new(pods, watcher::Config::default().labels(&selector))
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|result| async move {
            if let Err(e) = result {
                debug!(error = %e, "claim-template reconcile");
            }
        })
        .await;
}

async fn reconcile(pod: Arc<Pod>, client: Arc<kube::Client>) -> Result<Action, TemplateError> {
    // A bound pod's claims exist already; a deleted one needs none.
    let bound = pod.spec.as_ref().is_some_and(|s| s.node_name.is_some());
    if bound || pod.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = pod.namespace().unwrap_or_default();
    let api: Api<ResourceClaimTemplate> = Api::namespaced((*client).clone(), &namespace);
    for template in dra::templates_of(&pod) {
        let name = template.name_any();
        match api.create(&PostParams::default(), &template).await {
            Ok(_) => info!(namespace, template = name, pod = pod.name_any(), "created"),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(source) => {
                return Err(TemplateError {
                    namespace,
                    pod: pod.name_any(),
                    template: name,
                    source,
                });
            }
        }
    }
    Ok(Action::await_change())
}

fn error_policy(_pod: Arc<Pod>, error: &TemplateError, _client: Arc<kube::Client>) -> Action {
    warn!(%error, "ResourceClaimTemplate not made; retrying");
    Action::requeue(RETRY)
}
