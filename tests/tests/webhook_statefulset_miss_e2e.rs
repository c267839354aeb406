//! The first pod of a StatefulSet created a moment ago can reach the webhook before the
//! StatefulSet reaches its watch cache. The webhook then reads the StatefulSet live (bounded)
//! and renders the member from it, instead of denying it once or rendering the profile's
//! fallback replica count (3 for the shipped ZooKeeper profile) into a 5-member ensemble. Against the apiserver in
//! `TESSERA_E2E_KUBECONFIG`, over real HTTPS with a captured AdmissionReview; skipped, saying
//! so, when it is unset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod webhook_support;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use tessera_tests::e2e;
use webhook_support::{Ca, Client, Options, Server, apply, fixture, patch_of};

#[tokio::test]
async fn a_member_of_a_statefulset_not_yet_cached_is_rendered_from_a_live_read() {
    let Some(kubeconfig) = e2e::kubeconfig("webhook_statefulset_cache_miss") else {
        return;
    };
    let client = e2e::client(&kubeconfig).await.unwrap();
    let ns = e2e::unique("tessera-e2e-miss");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let _cleanup = Cleanup(kubeconfig.clone(), ns.clone());
    // Only its name and replicas matter to the review; its own pods carry no profile's labels
    // and never schedule, so no controller of the cluster takes it for an ensemble.
    let five: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "zk"},
        "spec": {"replicas": 5, "serviceName": "zk-hs",
                 "selector": {"matchLabels": {"e2e": "statefulset-miss"}},
                 "template": {"metadata": {"labels": {"e2e": "statefulset-miss"}},
                              "spec": {"nodeSelector": {"e2e": "nowhere"},
                                       "containers": [{"name": "idle", "image": "local/app:1"}]}}}
    }))
    .unwrap();
    Api::<StatefulSet>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &five)
        .await
        .unwrap();

    let ca = Ca::new("statefulset-miss");
    let server = Server::start(&ca, Options::default()).await;
    // A watch cache that has not seen the StatefulSet yet (and never will, here).
    let (empty, _writer) = kube::runtime::reflector::store::<StatefulSet>();
    server.state.set_statefulsets(empty, client.clone());
    let mut review = fixture("pod-statefulset-zk-1.request.json");
    review["request"]["namespace"] = json!(ns);
    review["request"]["object"]["metadata"]["namespace"] = json!(ns);
    let mut c = Client::connect(server.addr, ca.client_config())
        .await
        .unwrap();
    let (status, out) = c.mutate(&review).await;
    assert_eq!(status, 200);
    assert_eq!(out["response"]["allowed"], true, "{out}");
    let patch = patch_of(&review, &out).expect("the member is rendered");
    let pod = apply(&review, &patch);
    let text = pod.to_string();
    assert!(
        text.contains(&format!("zk-4.zk-hs.{ns}.svc.cluster.local")),
        "the peer list has the StatefulSet's 5 replicas: {text}"
    );
    server.stop().await;
}

/// Deletes the test's namespace when it ends, pass or fail.
struct Cleanup(std::path::PathBuf, String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let ns = self.1.clone();
        e2e::cleanup_blocking(self.0.clone(), move |client| async move {
            let _ = Api::<Namespace>::all(client)
                .delete(&ns, &DeleteParams::default())
                .await;
        });
    }
}
