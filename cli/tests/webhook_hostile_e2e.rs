//! The huge-ordinal pod through a real apiserver (`TESSERA_E2E_KUBECONFIG`; skipped, saying so,
//! when unset): `tessera webhook` registered by URL with `failurePolicy: Fail` denies a
//! StatefulSet-owned pod whose `apps.kubernetes.io/pod-index` is 4294967295 with the label and
//! the limit in the reason, stays up, and admits (and injects) the next ordinary member.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use tessera_tests::cluster::Harness;
use tessera_tests::e2e;

const LIMIT: Duration = Duration::from_secs(60);

/// Removes the MutatingWebhookConfiguration when dropped, pass or fail.
struct Registered(PathBuf, String);

impl Drop for Registered {
    fn drop(&mut self) {
        let name = self.1.clone();
        e2e::cleanup_blocking(self.0.clone(), move |client| async move {
            let api: Api<MutatingWebhookConfiguration> = Api::all(client);
            let _ = api.delete(&name, &DeleteParams::default()).await;
        });
    }
}

fn member(ns: &str, ordinal: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("zk-{}", ordinal.len()), "namespace": ns,
            "labels": {"app": "zk", "apps.kubernetes.io/pod-index": ordinal},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "zk",
                "uid": "00000000-0000-0000-0000-000000000001", "controller": true}]},
        "spec": {"subdomain": "zk-hs",
            "containers": [{"name": "zookeeper", "image": "registry.k8s.io/pause:3.10"}]}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_ordinal_is_denied_and_the_next_member_admitted_through_the_apiserver() {
    let test = "a_huge_ordinal_is_denied_and_the_next_member_admitted_through_the_apiserver";
    let Some(kubeconfig) = e2e::kubeconfig(test) else {
        return;
    };
    let h = Harness::start_with(&kubeconfig, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let webhook = support::file_mode_webhook(dir.path(), &[]);
    let log = &webhook.log;
    support::register_by_url(&h.client, &h.ns, "hostile.tessera.dev", &h.ns, &webhook).await;
    let _registered = Registered(kubeconfig.clone(), h.ns.clone());
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), &h.ns);
    let huge = member(&h.ns, "4294967295");
    // Dry runs until the apiserver calls the webhook (it picks up new configurations shortly).
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    // Only the webhook's own denial ends the wait: until the apiserver has picked up the new
    // configuration the create succeeds (a dry run), and a call that fails to reach the webhook
    // is not the answer either.
    let last = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reason = e2e::wait_for("the webhook to deny the huge ordinal", LIMIT, || {
        let (pods, huge, dry, last) = (pods.clone(), huge.clone(), dry.clone(), last.clone());
        async move {
            let error = pods.create(&dry, &huge).await.err()?.to_string();
            let denied = error.contains("apps.kubernetes.io/pod-index");
            *last.lock().unwrap() = error.clone();
            denied.then_some(error)
        }
    })
    .await
    .unwrap_or_else(|e| {
        let last = last.lock().unwrap().clone();
        panic!("{e}; last error: {last}\nwebhook log:\n{}", read(log))
    });
    assert!(
        reason.contains("label apps.kubernetes.io/pod-index")
            && reason.contains("maximum ensemble size (1000)"),
        "{reason}"
    );
    let denied = pods
        .create(&PostParams::default(), &huge)
        .await
        .unwrap_err();
    assert!(
        denied.to_string().contains("ordinal 4294967295"),
        "{denied}"
    );
    let admitted = pods
        .create(&PostParams::default(), &member(&h.ns, "1"))
        .await
        .unwrap_or_else(|e| panic!("{e}\nwebhook log:\n{}", read(log)));
    let annotations = admitted.metadata.annotations.unwrap_or_default();
    assert!(
        annotations.contains_key("tessera.dev/injected"),
        "{annotations:?}"
    );
    println!("denied: {reason}");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
