//! The webhook against a real apiserver: the InjectionProfile CRD installs, profiles created in
//! the cluster are served, an invalid one is refused without taking the others down and gets a
//! Warning Event naming the field, and a deleted one stops being served. Runs against the
//! cluster in `TESSERA_E2E_KUBECONFIG` and prints a skip line when it is unset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::await_condition;
use kube::{Api, Client};
use prometheus_client::registry::Registry;
use tessera_inject::{InjectionProfile, InjectionProfileSpec};
use tessera_tests::e2e;
use tessera_webhook::WebhookState;
use tessera_webhook::config::AdmissionConfig;
use tessera_webhook::metrics::Metrics;

const LIMIT: Duration = Duration::from_secs(60);

async fn client() -> Option<Client> {
    let Some(path) = std::env::var_os("TESSERA_E2E_KUBECONFIG") else {
        println!("skipped: TESSERA_E2E_KUBECONFIG is not set");
        return None;
    };
    let file = Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .unwrap();
    Some(Client::try_from(config).unwrap())
}

fn profile(name: &str, spec: serde_json::Value) -> InjectionProfile {
    let spec: InjectionProfileSpec = serde_json::from_value(spec).unwrap();
    InjectionProfile::new(name, spec)
}

/// Waits until the served profile names satisfy `want`.
async fn served(state: &WebhookState, want: impl Fn(&[String]) -> bool) {
    let mut rx = state.subscribe();
    tokio::time::timeout(LIMIT, async {
        loop {
            let names: Vec<String> = state.profiles().iter().map(|p| p.name.clone()).collect();
            if want(&names) {
                return;
            }
            rx.changed().await.unwrap();
        }
    })
    .await
    .expect("the served profiles never reached the expected set");
}

/// Deletes the named profiles when dropped, pass or fail: a leftover profile with an empty
/// selector would inject into every pod that any later test's webhook sees.
struct ProfilesGone(Vec<String>);

impl Drop for ProfilesGone {
    fn drop(&mut self) {
        let Some(path) = std::env::var_os(e2e::KUBECONFIG_ENV) else {
            return;
        };
        let names = std::mem::take(&mut self.0);
        e2e::cleanup_blocking(path.into(), move |client| async move {
            let api: Api<InjectionProfile> = Api::all(client);
            for name in names {
                let _ = api.delete(&name, &DeleteParams::default()).await;
            }
        });
    }
}

/// Webhook state fed by the InjectionProfile watch.
fn watched(client: &Client) -> Arc<WebhookState> {
    let mut registry = Registry::default();
    let state = Arc::new(WebhookState::new(
        AdmissionConfig::default(),
        Metrics::register(&mut registry),
        Duration::from_secs(5),
    ));
    tokio::spawn(tessera_webhook::watch::run(client.clone(), state.clone()));
    state
}

#[tokio::test]
async fn cluster_profiles_are_served_invalid_ones_refused_and_deletions_followed() {
    let Some(client) = client().await else { return };
    e2e::install_profile_crd(&client).await;
    let state = watched(&client);

    let api: Api<InjectionProfile> = Api::all(client);
    let good = format!("e2e-good-{}", std::process::id());
    let bad = format!("e2e-bad-{}", std::process::id());
    let _gone = ProfilesGone(vec![good.clone(), bad.clone()]);
    let pp = PostParams::default();
    api.create(&pp, &profile(&good, serde_json::json!({"selector": {}, "sidecars": {"containers": [{"name": "s", "image": "s:1"}]}})))
        .await
        .unwrap();
    served(&state, |n| n.contains(&good)).await;
    assert!(state.is_ready());

    // The generation before the bad profile exists: read after, its change could be missed.
    let mut rx = state.subscribe();
    let before = *rx.borrow_and_update();
    api.create(
        &pp,
        &profile(
            &bad,
            serde_json::json!({"identity": {"env": {"X": "{{nope}}"}}}),
        ),
    )
    .await
    .unwrap();
    // The bad one is seen (a new set is published) but not served; the good one stays.
    tokio::time::timeout(LIMIT, rx.wait_for(|g| *g > before))
        .await
        .unwrap()
        .unwrap();
    let names: Vec<String> = state.profiles().iter().map(|p| p.name.clone()).collect();
    assert!(names.contains(&good) && !names.contains(&bad), "{names:?}");

    let dp = DeleteParams::default();
    api.delete(&good, &dp).await.unwrap();
    served(&state, |n| !n.contains(&good)).await;
    api.delete(&bad, &dp).await.unwrap();
}

#[tokio::test]
async fn an_invalid_cluster_profile_gets_a_warning_event_naming_the_field() {
    use futures::TryStreamExt;
    use k8s_openapi::api::events::v1::Event;
    use kube::runtime::{WatchStreamExt, watcher};
    let Some(client) = client().await else { return };
    e2e::install_profile_crd(&client).await;
    let state = watched(&client);
    let api: Api<InjectionProfile> = Api::all(client.clone());
    let name = format!("e2e-event-{}", std::process::id());
    let _gone = ProfilesGone(vec![name.clone()]);
    let spec = serde_json::json!({"selector": {}, "spiffe": {"trustDomain": "example.org", "audience": "mesh", "expirationSeconds": 60}});
    let created = api
        .create(&PostParams::default(), &profile(&name, spec))
        .await
        .unwrap();
    let uid = created.metadata.uid.clone().unwrap();
    // Cluster-scoped objects have their Events in the default namespace.
    let events: Api<Event> = Api::namespaced(client, "default");
    let about_it = watcher(events, watcher::Config::default())
        .applied_objects()
        .try_filter(|e| {
            let regarding = e.regarding.as_ref();
            std::future::ready(regarding.and_then(|r| r.uid.as_deref()) == Some(uid.as_str()))
        });
    futures::pin_mut!(about_it);
    let event = tokio::time::timeout(LIMIT, about_it.try_next())
        .await
        .expect("no Event about the invalid profile")
        .unwrap()
        .unwrap();
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.reason.as_deref(), Some("InvalidProfile"));
    assert_eq!(
        event.reporting_controller.as_deref(),
        Some("tessera.dev/webhook")
    );
    let note = event.note.unwrap_or_default();
    assert!(
        note.contains("spec.spiffe.expirationSeconds") && note.contains("60"),
        "{note}"
    );
    let regarding = event.regarding.unwrap();
    assert_eq!(
        (regarding.kind.as_deref(), regarding.name.as_deref()),
        (Some("InjectionProfile"), Some(name.as_str()))
    );
    assert!(!state.profiles().iter().any(|p| p.name == name));
    api.delete(&name, &DeleteParams::default()).await.unwrap();
}

#[tokio::test]
async fn peers_configmap_follows_statefulset_scaling() {
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::core::v1::ConfigMap;
    let Some(client) = client().await else { return };
    let mut registry = Registry::default();
    let state = Arc::new(WebhookState::new(
        AdmissionConfig::default(),
        Metrics::register(&mut registry),
        Duration::from_secs(5),
    ));
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../manifests/profiles/zookeeper.yaml"),
    )
    .unwrap();
    state.set_profiles(tessera_webhook::profiles::parse(&text).profiles, 0);
    tokio::spawn(tessera_webhook::peers::run(
        client.clone(),
        state.clone(),
        "cluster.local".into(),
    ));
    let name = format!("e2e-zk-{}", std::process::id());
    let sts = e2e::zookeeper_statefulset(&name);
    let statefulsets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    statefulsets
        .create(&PostParams::default(), &sts)
        .await
        .unwrap();
    let configmaps: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm_name = format!("{name}-peers");
    let replicas_are = |n: &'static str| {
        move |cm: Option<&ConfigMap>| {
            cm.and_then(|c| c.data.as_ref())
                .and_then(|d| d.get("replicas"))
                .map(String::as_str)
                == Some(n)
        }
    };
    tokio::time::timeout(
        LIMIT,
        await_condition(configmaps.clone(), &cm_name, replicas_are("3")),
    )
    .await
    .expect("peers ConfigMap never appeared")
    .unwrap();
    let scale = serde_json::json!({"spec": {"replicas": 5}});
    statefulsets
        .patch(&name, &PatchParams::default(), &Patch::Merge(&scale))
        .await
        .unwrap();
    tokio::time::timeout(
        LIMIT,
        await_condition(configmaps.clone(), &cm_name, replicas_are("5")),
    )
    .await
    .expect("peers ConfigMap did not follow the scale-out")
    .unwrap();
    let cm = configmaps.get(&cm_name).await.unwrap();
    assert_eq!(cm.data.unwrap()["peers"].split(' ').count(), 5);
    statefulsets
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn self_managed_certificate_is_stored_trusted_and_kept() {
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
    use k8s_openapi::api::core::v1::Secret;
    use tessera_webhook::cert_sync::{self as certs, SelfManaged};
    let Some(client) = client().await else { return };
    let name = format!("e2e-tessera-webhook-{}", std::process::id());
    let mwc: MutatingWebhookConfiguration = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "webhooks": [{"name": "inject.tessera.dev", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "clientConfig": {"service": {"name": "tessera-webhook", "namespace": "default", "path": "/mutate"}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "objectSelector": {"matchLabels": {"e2e-never": name}}}]
    }))
    .unwrap();
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    mwcs.create(&PostParams::default(), &mwc).await.unwrap();
    let managed = SelfManaged {
        namespace: "default".into(),
        secret: name.clone(),
        service: "tessera-webhook".into(),
        webhook_configuration: name.clone(),
        cluster_domain: "cluster.local".into(),
        extra_names: Vec::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    certs::ensure(&client, &managed, (&cert, &key))
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let stored = secrets.get(&name).await.unwrap().data.unwrap();
    let ca = stored["ca.crt"].clone();
    assert_eq!(std::fs::read(&cert).unwrap(), stored["tls.crt"].0);
    let got = mwcs.get(&name).await.unwrap();
    assert_eq!(
        got.webhooks.unwrap()[0].client_config.ca_bundle.as_ref(),
        Some(&ca)
    );
    // A second pass keeps the same CA and certificate (nothing is due).
    certs::ensure(&client, &managed, (&cert, &key))
        .await
        .unwrap();
    let again = secrets.get(&name).await.unwrap().data.unwrap();
    assert_eq!(again["tls.crt"], stored["tls.crt"]);
    secrets
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    mwcs.delete(&name, &DeleteParams::default()).await.unwrap();
}
