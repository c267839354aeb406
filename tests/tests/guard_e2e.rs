//! The ValidatingAdmissionPolicy guards in manifests/guard/ against a real apiserver
//! (`TESSERA_E2E_KUBECONFIG`; skipped, saying so, when unset): a pod asking for Tessera GPUs that
//! the webhook did not process is refused at creation with a message saying so; a processed one
//! is admitted. Tessera's assignment annotations cannot be forged on create or update by anyone
//! but Tessera's service accounts, a share pod created with `spec.nodeName` is refused, and a
//! Binding still carries the assignment. The policies are installed for the test and removed
//! afterwards.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde::Deserialize;
use serde_json::json;
use tessera_tests::cluster::Harness;
use tessera_tests::e2e;

/// The policies manifests/guard/ installs, each with a binding of the same name.
const GUARDS: [&str; 4] = [
    "tessera-gpu-share-guard",
    "tessera-assignment-guard",
    "tessera-webhook-configmaps",
    "tessera-device-plugin-node-scope",
];

/// Removes the test's Nodes when it ends, pass or fail.
struct Nodes(std::path::PathBuf, Vec<String>);

impl Drop for Nodes {
    fn drop(&mut self) {
        let names = self.1.clone();
        e2e::cleanup_blocking(self.0.clone(), move |client| async move {
            for name in names {
                let _ = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
                    .delete(&name, &DeleteParams::default())
                    .await;
            }
        });
    }
}

/// Removes the policy when the test ends, pass or fail (kubeconfig, a namespace to try pods in).
struct Installed(std::path::PathBuf, String);

impl Drop for Installed {
    fn drop(&mut self) {
        let namespace = self.1.clone();
        // The policy must not outlive the test, pass or fail.
        e2e::cleanup_blocking(self.0.clone(), move |client| async move {
            let dp = DeleteParams::default();
            for name in GUARDS {
                let _ = Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
                    .delete(name, &dp)
                    .await;
                let _ = Api::<ValidatingAdmissionPolicy>::all(client.clone())
                    .delete(name, &dp)
                    .await;
            }
            // The apiserver stops enforcing a deleted policy a moment later; later tests
            // create such pods, so wait until a server-side dry run admits one again.
            let pods: Api<Pod> = Api::namespaced(client, &namespace);
            let dry = PostParams {
                dry_run: true,
                ..Default::default()
            };
            for _ in 0..100 {
                if pods
                    .create(&dry, &pod("after-guard", "default-scheduler", false))
                    .await
                    .is_ok()
                {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
    }
}

fn pod(name: &str, scheduler: &str, injected: bool) -> Pod {
    let annotations = if injected {
        json!({"tessera.dev/injected": "gpu-sharing@0"})
    } else {
        json!({})
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "schedulerName": scheduler,
            "containers": [{"name": "main", "image": "local/app:1",
                            "resources": {"limits": {"tessera.dev/gpu-mem": "4096"}}}]
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn the_guards_refuse_missed_pods_and_forged_assignments() {
    let Some(kubeconfig) = e2e::kubeconfig("guard_refuses_unprocessed_gpu_pods") else {
        return;
    };
    let h = Harness::start_with(&kubeconfig, 0, 0).await;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/guard/validating-admission-policy.yaml"
    ))
    .unwrap();
    let mut docs = serde_yaml_ng::Deserializer::from_str(&text);
    let _installed = Installed(kubeconfig.clone(), h.ns.clone());
    for _ in GUARDS {
        let policy: ValidatingAdmissionPolicy =
            ValidatingAdmissionPolicy::deserialize(docs.next().unwrap()).unwrap();
        let binding: ValidatingAdmissionPolicyBinding =
            ValidatingAdmissionPolicyBinding::deserialize(docs.next().unwrap()).unwrap();
        Api::<ValidatingAdmissionPolicy>::all(h.client.clone())
            .create(&PostParams::default(), &policy)
            .await
            .unwrap();
        Api::<ValidatingAdmissionPolicyBinding>::all(h.client.clone())
            .create(&PostParams::default(), &binding)
            .await
            .unwrap();
    }

    // The apiserver starts enforcing a new policy within a few seconds.
    let pods = h.pods();
    let start = Instant::now();
    let refusal = loop {
        match pods
            .create(
                &PostParams::default(),
                &pod("missed", "default-scheduler", false),
            )
            .await
        {
            Err(kube::Error::Api(status)) => break status,
            Ok(_) => {
                let _ = pods
                    .delete(
                        "missed",
                        &DeleteParams {
                            grace_period_seconds: Some(0),
                            ..Default::default()
                        },
                    )
                    .await;
            }
            Err(other) => panic!("{other}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the guard never refused a pod"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(refusal.code, 422, "{refusal:?}");
    assert!(
        refusal
            .message
            .contains("schedulerName is default-scheduler, not tessera-scheduler"),
        "{}",
        refusal.message
    );
    assert!(
        refusal
            .message
            .contains("Tessera webhook did not process it"),
        "{}",
        refusal.message
    );

    let no_marker = pods
        .create(
            &PostParams::default(),
            &pod("unmarked", "tessera-scheduler", false),
        )
        .await;
    let Err(kube::Error::Api(status)) = no_marker else {
        panic!("unmarked pod admitted")
    };
    assert!(
        status
            .message
            .contains("no tessera.dev/injected annotation"),
        "{}",
        status.message
    );

    // A quorum member on another scheduler: nothing would keep its ensemble quorum-safe.
    let member: Pod = serde_json::from_value(json!({
        "metadata": {"name": "zk-0", "labels": {"tessera.dev/quorum": "true"}},
        "spec": {"containers": [{"name": "zookeeper", "image": "local/app:1"}]}
    }))
    .unwrap();
    let Err(kube::Error::Api(status)) = pods.create(&PostParams::default(), &member).await else {
        panic!("a quorum member on the default scheduler was admitted")
    };
    assert!(
        status.message.contains(
            "labelled tessera.dev/quorum=true but its schedulerName is default-scheduler"
        ),
        "{}",
        status.message
    );

    pods.create(
        &PostParams::default(),
        &pod("processed", "tessera-scheduler", true),
    )
    .await
    .unwrap();
    init_and_ephemeral_shares_are_guarded(&h).await;
    forged_assignments_are_refused(&h, &kubeconfig).await;
    the_webhook_writes_only_its_peer_lists(&h, &kubeconfig).await;
    a_device_plugin_writes_only_its_own_node(&h, &kubeconfig).await;
}

/// A share in an init container counts like one in an app container: one that asks for
/// nothing (or more than a whole GPU's compute) is refused naming the container. An ephemeral
/// container asking for a share (on `pods/ephemeralcontainers`, which the webhook never sees)
/// is refused: by the apiserver's own validation, which forbids resources on ephemeral
/// containers, or by the guard behind it.
async fn init_and_ephemeral_shares_are_guarded(h: &Harness) {
    let pods = h.pods();
    let bad_init: Pod = serde_json::from_value(json!({
        "metadata": {"name": "bad-init", "annotations": {"tessera.dev/injected": "gpu-sharing@0"}},
        "spec": {
            "schedulerName": "tessera-scheduler",
            "initContainers": [{"name": "warm", "image": "local/app:1",
                                "resources": {"limits": {"tessera.dev/gpu-core": "150"}}}],
            "containers": [{"name": "main", "image": "local/app:1"}]
        }
    }))
    .unwrap();
    let Err(kube::Error::Api(status)) = pods.create(&PostParams::default(), &bad_init).await else {
        panic!("an init container asking for 150% of a GPU was admitted")
    };
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status
            .message
            .contains("container warm asks for a tessera.dev GPU share"),
        "{}",
        status.message
    );

    let debug = json!({"spec": {"ephemeralContainers": [{
        "name": "debug", "image": "local/app:1",
        "resources": {"limits": {"tessera.dev/gpu-mem": "1024"}}}]}});
    let refused = pods
        .patch_subresource(
            "ephemeralcontainers",
            "processed",
            &PatchParams::default(),
            &Patch::Strategic(debug),
        )
        .await;
    let Err(kube::Error::Api(status)) = refused else {
        panic!("an ephemeral container asking for a share was admitted: {refused:?}")
    };
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status
            .message
            .to_lowercase()
            .contains("ephemeral container"),
        "{}",
        status.message
    );
}

/// A forged assignment: on create, on update by a user, and on a pod placed by hand; Tessera's
/// own writers (the extender's service account, here impersonated) and Bindings pass.
async fn forged_assignments_are_refused(h: &Harness, kubeconfig: &std::path::Path) {
    let pods = h.pods();
    let assignment = r#"{"main":["GPU-0:25"]}"#;
    let mut forged = pod("forged", "tessera-scheduler", true);
    forged
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert("tessera.dev/gpu-assignment".into(), assignment.into());
    let Err(kube::Error::Api(status)) = pods.create(&PostParams::default(), &forged).await else {
        panic!("a pod created with its own GPU assignment was admitted")
    };
    assert!(
        status
            .message
            .contains("only Tessera writes tessera.dev/gpu-assignment"),
        "{}",
        status.message
    );

    let mut placed = pod("placed-by-hand", "tessera-scheduler", true);
    placed.spec.as_mut().unwrap().node_name = Some("node-x".into());
    let Err(kube::Error::Api(status)) = pods.create(&PostParams::default(), &placed).await else {
        panic!("a share pod created with spec.nodeName was admitted")
    };
    assert!(
        status
            .message
            .contains("spec.nodeName node-x set at creation: that bypasses the Tessera scheduler"),
        "{}",
        status.message
    );

    // A user (here the cluster admin) annotating an existing pod is refused.
    let patch = json!({"metadata": {"annotations": {"tessera.dev/bind-phase": "allocated"}}});
    let merge = kube::api::Patch::Merge(&patch);
    let params = kube::api::PatchParams::default();
    let Err(kube::Error::Api(status)) = pods.patch("processed", &params, &merge).await else {
        panic!("a user's write of tessera.dev/bind-phase was admitted")
    };
    assert!(
        status
            .message
            .contains("only Tessera writes tessera.dev/bind-phase (written by"),
        "{}",
        status.message
    );
    // Other annotations stay the user's.
    let own = json!({"metadata": {"annotations": {"team": "ml"}}});
    pods.patch("processed", &params, &kube::api::Patch::Merge(&own))
        .await
        .unwrap();

    // The extender's service account may (impersonated with the admin's rights, so that only
    // the policy decides).
    let as_extender: Api<Pod> =
        Api::namespaced(acting_as(kubeconfig, "tessera-extender").await, &h.ns);
    as_extender
        .patch("processed", &params, &merge)
        .await
        .unwrap();

    // A Binding carrying the assignment (the extender's one-write bind) is not a pod update.
    let unbound = pods
        .create(
            &PostParams::default(),
            &pod("to-bind", "tessera-scheduler", true),
        )
        .await
        .unwrap();
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": "to-bind", "uid": unbound.metadata.uid,
                     "annotations": {"tessera.dev/gpu-assignment": assignment}},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-x"}
    });
    pods.create_subresource::<_, serde_json::Value>(
        "binding",
        "to-bind",
        &PostParams::default(),
        &binding,
    )
    .await
    .unwrap();
    let bound = pods.get("to-bind").await.unwrap();
    assert_eq!(
        bound.metadata.annotations.unwrap()["tessera.dev/gpu-assignment"],
        assignment
    );
}

/// A client acting as `service_account` of tessera-system, with the admin's rights so that only
/// the policies decide.
async fn acting_as(kubeconfig: &std::path::Path, service_account: &str) -> kube::Client {
    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    config.auth_info.impersonate = Some(format!(
        "system:serviceaccount:tessera-system:{service_account}"
    ));
    config.auth_info.impersonate_groups = Some(vec!["system:masters".into()]);
    kube::Client::try_from(config).unwrap()
}

/// The webhook's service account writes its own peer lists and nothing else.
async fn the_webhook_writes_only_its_peer_lists(h: &Harness, kubeconfig: &std::path::Path) {
    use k8s_openapi::api::core::v1::ConfigMap;
    let as_webhook: Api<ConfigMap> =
        Api::namespaced(acting_as(kubeconfig, "tessera-webhook").await, &h.ns);
    let cm = |name: &str, tessera: bool| -> ConfigMap {
        let labels = if tessera {
            json!({"app.kubernetes.io/managed-by": "tessera"})
        } else {
            json!({})
        };
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "zk",
                    "uid": "00000000-0000-0000-0000-000000000001", "controller": true}]},
            "data": {"replicas": "3"}
        }))
        .unwrap()
    };
    as_webhook
        .create(&PostParams::default(), &cm("zk-peers", true))
        .await
        .unwrap();
    let Err(kube::Error::Api(status)) = as_webhook
        .create(&PostParams::default(), &cm("app-settings", true))
        .await
    else {
        panic!("the webhook created a ConfigMap that is not a peer list")
    };
    assert!(
        status
            .message
            .contains("writes only the <statefulset>-peers ConfigMaps it keeps, not app-settings"),
        "{}",
        status.message
    );
    // Somebody else's ConfigMap that happens to be named like a peer list is not taken over.
    let users: Api<ConfigMap> = Api::namespaced(h.client.clone(), &h.ns);
    users
        .create(&PostParams::default(), &cm("web-peers", false))
        .await
        .unwrap();
    let takeover = json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "tessera"}}});
    let Err(kube::Error::Api(status)) = as_webhook
        .patch(
            "web-peers",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&takeover),
        )
        .await
    else {
        panic!("the webhook took over a user's ConfigMap")
    };
    assert!(
        status.message.contains("not web-peers"),
        "{}",
        status.message
    );
}

/// The device plugin's service account as its pod's token presents it: with the node-name claim
/// of the node it runs on (`None`: a token without it).
async fn device_plugin_on(kubeconfig: &std::path::Path, node: Option<&str>) -> kube::Client {
    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    config.auth_info.impersonate =
        Some("system:serviceaccount:tessera-system:tessera-device-plugin".into());
    config.auth_info.impersonate_groups = Some(vec!["system:masters".into()]);
    if let Some(node) = node {
        config.headers.push((
            "Impersonate-Extra-authentication.kubernetes.io%2fnode-name"
                .parse()
                .unwrap(),
            node.parse().unwrap(),
        ));
    }
    kube::Client::try_from(config).unwrap()
}

/// Each node's device plugin patches only its Node and the pods bound to it.
async fn a_device_plugin_writes_only_its_own_node(h: &Harness, kubeconfig: &std::path::Path) {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Patch, PatchParams};
    let (mine, theirs) = (format!("{}-a", h.ns), format!("{}-b", h.ns));
    let _nodes = Nodes(kubeconfig.to_path_buf(), vec![mine.clone(), theirs.clone()]);
    for name in [&mine, &theirs] {
        tessera_tests::cluster::create_gpu_node(&h.client, name, "zone-a", 1).await;
    }
    let on = |name: &str, node: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"nodeName": node,
                     "tolerations": [{"operator": "Exists"}],
                     "containers": [{"name": "main", "image": "local/app:1"}]}
        }))
        .unwrap()
    };
    let pods = h.pods();
    pods.create(&PostParams::default(), &on("on-mine", &mine))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &on("on-theirs", &theirs))
        .await
        .unwrap();
    let note = json!({"metadata": {"annotations": {"tessera.dev/e2e-note": "x"}}});
    let patch = Patch::Merge(&note);
    let pp = PatchParams::default();

    let plugin = device_plugin_on(kubeconfig, Some(&mine)).await;
    let (plugin_pods, plugin_nodes): (Api<Pod>, Api<Node>) =
        (Api::namespaced(plugin.clone(), &h.ns), Api::all(plugin));
    plugin_pods.patch("on-mine", &pp, &patch).await.unwrap();
    plugin_nodes.patch(&mine, &pp, &patch).await.unwrap();
    let Err(kube::Error::Api(status)) = plugin_pods.patch("on-theirs", &pp, &patch).await else {
        panic!("the device plugin on {mine} patched a pod bound to {theirs}")
    };
    assert!(
        status.message.contains(&format!(
            "on node {mine} may write only its own Node and the pods bound to it, not pods on-theirs on {theirs}"
        )),
        "{}",
        status.message
    );
    let Err(kube::Error::Api(status)) = plugin_nodes.patch(&theirs, &pp, &patch).await else {
        panic!("the device plugin on {mine} patched Node {theirs}")
    };
    assert!(
        status.message.contains(&format!("not nodes {theirs}")),
        "{}",
        status.message
    );

    // A token without the claim (a long-lived Secret token, say) writes nothing.
    let unbound = device_plugin_on(kubeconfig, None).await;
    let Err(kube::Error::Api(status)) = Api::<Node>::all(unbound).patch(&mine, &pp, &patch).await
    else {
        panic!("the device plugin wrote without a node-bound token")
    };
    assert!(
        status.message.contains("token bound to its pod"),
        "{}",
        status.message
    );
}
