//! The shipped MutatingWebhookConfiguration with the webhook down, against the real apiserver in
//! `TESSERA_E2E_KUBECONFIG` (skipped, saying so, when unset): ordinary pods in ordinary
//! namespaces are admitted, middleware pods nobody opted in included; pods an operator opted in
//! (opted-in namespace, opt-in annotation or label, a `tessera.dev/` profile label) and GPU
//! resources of Tessera, gpushare or HAMi are refused.
//! The configuration is the shipped file, pointed at a closed port and narrowed to the test's
//! two namespaces so that other tests' pods are not affected.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tessera_tests::e2e;
use tessera_tests::process::free_addr;

/// Label that narrows the configuration to this test's namespaces.
const SCOPE: &str = "tessera-e2e-scope";

struct Cleanup {
    kubeconfig: PathBuf,
    namespaces: Vec<String>,
    mwc: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (namespaces, mwc) = (self.namespaces.clone(), self.mwc.clone());
        e2e::cleanup_blocking(self.kubeconfig.clone(), move |client| async move {
            let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
            let _ = api.delete(&mwc, &DeleteParams::default()).await;
            let api: Api<Namespace> = Api::all(client);
            for ns in namespaces {
                let _ = api.delete(&ns, &DeleteParams::default()).await;
            }
        });
    }
}

fn shipped_configuration(name: &str, scope: &str) -> MutatingWebhookConfiguration {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/webhook/mutatingwebhookconfiguration.yaml");
    let mut doc: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["metadata"]["name"] = json!(name);
    // Nothing listens there: the webhook is down.
    let url = format!("https://{}/mutate", free_addr());
    for hook in doc["webhooks"].as_array_mut().unwrap() {
        hook["clientConfig"] = json!({"url": url});
        let selector = &mut hook["namespaceSelector"]["matchExpressions"];
        selector
            .as_array_mut()
            .unwrap()
            .push(json!({"key": SCOPE, "operator": "In", "values": [scope]}));
    }
    serde_json::from_value(doc).unwrap()
}

async fn namespace(client: &Client, name: &str, labels: Value) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
    api.create(&PostParams::default(), &ns).await.unwrap();
}

fn pod(labels: Value, annotations: Value, limits: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"generateName": "probe-", "labels": labels, "annotations": annotations},
        "spec": {"containers": [{"name": "main", "image": "local/app:1",
                                 "resources": {"limits": limits}}]}
    }))
    .unwrap()
}

/// A server-side dry run: admission runs, nothing is stored.
async fn admitted(client: &Client, ns: &str, pod: &Pod) -> Result<(), String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    api.create(&dry, pod)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn with_the_webhook_down_only_pods_tessera_can_change_are_refused() {
    let Some(kubeconfig) = e2e::kubeconfig("webhook_scope_down") else {
        return;
    };
    let client = e2e::client(&kubeconfig).await.unwrap();
    let scope = e2e::unique("tessera-e2e-scope");
    let (plain, opted) = (format!("{scope}-plain"), format!("{scope}-opted"));
    let _cleanup = Cleanup {
        kubeconfig: kubeconfig.clone(),
        namespaces: vec![plain.clone(), opted.clone()],
        mwc: scope.clone(),
    };
    namespace(&client, &plain, json!({SCOPE: scope})).await;
    namespace(
        &client,
        &opted,
        json!({SCOPE: scope, "tessera.dev/injection": "enabled"}),
    )
    .await;
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &shipped_configuration(&scope, &scope),
    )
    .await
    .unwrap();
    let none = json!({});
    // The configuration takes effect once the apiserver's informer has it.
    let gpu = pod(
        none.clone(),
        none.clone(),
        json!({"tessera.dev/gpu-mem": "4096"}),
    );
    e2e::wait_for(
        "the configuration in effect",
        std::time::Duration::from_secs(20),
        || async { admitted(&client, &plain, &gpu).await.err() },
    )
    .await
    .unwrap();

    let ordinary = [
        (
            "a plain pod",
            pod(none.clone(), none.clone(), json!({"cpu": "1"})),
        ),
        (
            "a plain NVIDIA GPU pod",
            pod(none.clone(), none.clone(), json!({"nvidia.com/gpu": "1"})),
        ),
        (
            "an opted-out GPU pod",
            pod(
                json!({"tessera.dev/inject": "false"}),
                none.clone(),
                json!({"tessera.dev/gpu-mem": "4096"}),
            ),
        ),
        (
            "a pod of another app",
            pod(json!({"app": "nginx"}), none.clone(), none.clone()),
        ),
        (
            "a ZooKeeper member nobody opted in",
            pod(json!({"app": "zookeeper"}), none.clone(), none.clone()),
        ),
        (
            "a Kafka broker nobody opted in",
            pod(json!({"app": "kafka"}), none.clone(), none.clone()),
        ),
    ];
    for (what, p) in &ordinary {
        if let Err(e) = admitted(&client, &plain, p).await {
            panic!("{what} in an ordinary namespace was refused: {e}");
        }
    }
    let changeable = [
        ("a Tessera GPU share", &plain, gpu.clone()),
        (
            "a gpushare request",
            &plain,
            pod(
                none.clone(),
                none.clone(),
                json!({"aliyun.com/gpu-mem": "4"}),
            ),
        ),
        (
            "a HAMi request",
            &plain,
            pod(
                none.clone(),
                none.clone(),
                json!({"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4000"}),
            ),
        ),
        (
            "the opt-in annotation",
            &plain,
            pod(
                none.clone(),
                json!({"tessera.dev/inject": "zookeeper"}),
                none.clone(),
            ),
        ),
        (
            "the opt-in label",
            &plain,
            pod(
                json!({"tessera.dev/inject": "true"}),
                none.clone(),
                none.clone(),
            ),
        ),
        (
            "a ZooKeeper member of an opted-in namespace",
            &opted,
            pod(json!({"app": "zookeeper"}), none.clone(), none.clone()),
        ),
        (
            "a plain pod of an opted-in namespace",
            &opted,
            pod(none.clone(), none.clone(), none.clone()),
        ),
    ];
    for (what, ns, p) in &changeable {
        let refused = admitted(&client, ns, p).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("failed calling webhook")),
            "{what}: {refused:?}"
        );
    }
    println!(
        "webhook down: {} ordinary pods admitted, {} pods Tessera can change refused",
        ordinary.len(),
        changeable.len()
    );
}
