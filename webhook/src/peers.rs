//! The peers controller: for every StatefulSet whose pod template a profile with a peer list
//! selects, keeps the ConfigMap `<statefulset>-peers` in step with its replicas (server-side
//! apply, owned by the StatefulSet so it goes when the StatefulSet goes). What the ConfigMap
//! holds is decided in `tessera_inject::peers`; this module only watches and writes.
//! It reconciles on StatefulSet and ConfigMap changes and whenever the profile set changes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use tessera_inject::peers;
use thiserror::Error;
use tracing::{debug, warn};

use crate::state::WebhookState;

/// Field manager for the server-side apply.
pub const FIELD_MANAGER: &str = "tessera-webhook";

/// Why one StatefulSet could not be reconciled.
#[derive(Debug, Error)]
pub enum PeersError {
    /// The profile does not render for this StatefulSet (no headless service, …).
    #[error("statefulset {namespace}/{name}: {source}")]
    Render {
        /// Namespace.
        namespace: String,
        /// StatefulSet.
        name: String,
        /// Render failure.
        #[source]
        source: tessera_inject::RenderError,
    },
    /// The apiserver refused the ConfigMap.
    #[error("statefulset {namespace}/{name}: writing ConfigMap: {source}")]
    Apply {
        /// Namespace.
        namespace: String,
        /// StatefulSet.
        name: String,
        /// Client failure.
        #[source]
        source: kube::Error,
    },
}

struct Ctx {
    client: kube::Client,
    state: Arc<WebhookState>,
    cluster_domain: String,
}

/// Runs the controller until the watches end (they do not: errors are retried).
pub async fn run(client: kube::Client, state: Arc<WebhookState>, cluster_domain: String) {
    let statefulsets: Api<StatefulSet> = Api::all(client.clone());
    let configmaps: Api<ConfigMap> = Api::all(client.clone());
    let profile_changes = futures::stream::unfold(state.subscribe(), |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    });
    let ctx = Arc::new(Ctx {
        client,
        state,
        cluster_domain,
    });
    let controller = Controller::new(statefulsets, watcher::Config::default());
    // Admission reads replicas from the same cache (identity templates, group size).
    ctx.state
        .set_statefulsets(controller.store(), ctx.client.clone());
    controller
        .owns(configmaps, watcher::Config::default())
        .reconcile_all_on(profile_changes)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                debug!(error = %e, "peers reconcile");
            }
        })
        .await;
}

async fn reconcile(sts: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Action, PeersError> {
    let (namespace, name) = (sts.namespace().unwrap_or_default(), sts.name_any());
    let Some(spec) = sts.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    let meta = spec.template.metadata.clone().unwrap_or_default();
    let profiles = ctx.state.profiles();
    let Some(profile) = peers::peer_profile(
        &profiles,
        &meta.labels.unwrap_or_default(),
        &meta.annotations.unwrap_or_default(),
    ) else {
        return Ok(Action::await_change());
    };
    let replicas = u32::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
    let data = peers::configmap_data(
        profile,
        &name,
        &namespace,
        spec.service_name.as_deref(),
        replicas,
        &ctx.cluster_domain,
    )
    .map_err(|source| PeersError::Render {
        namespace: namespace.clone(),
        name: name.clone(),
        source,
    })?;
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(format!("{name}{}", peers::CONFIGMAP_SUFFIX)),
            namespace: Some(namespace.clone()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "tessera".to_string(),
            )])),
            owner_references: sts.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    };
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let cm_name = cm.metadata.name.clone().unwrap_or_default();
    api.patch(&cm_name, &params, &Patch::Apply(&cm))
        .await
        .map_err(|source| PeersError::Apply {
            namespace,
            name,
            source,
        })?;
    Ok(Action::requeue(Duration::from_secs(600)))
}

fn error_policy(_sts: Arc<StatefulSet>, error: &PeersError, _ctx: Arc<Ctx>) -> Action {
    warn!(%error, "peers ConfigMap not updated");
    Action::requeue(Duration::from_secs(30))
}
