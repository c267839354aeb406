//! The slim decoding must lead to the same decisions as the whole Pod.

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use tessera_core::cluster::PodFacts;
use tessera_core::keys;
use tessera_core::request::{self, RequestContext, Translation, pod_group};

use super::SlimPod;

/// A pod with every field the decisions read, and plenty they do not.
fn rich_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "zk-1",
            "namespace": "mw",
            "uid": "6f1e0c1a-2b7d-4d0e-9a51-0f1f5d7a9b10",
            "resourceVersion": "4711",
            "labels": {"app": "zk", keys::LABEL_QUORUM: "true", "tessera.dev/group-size": "5"},
            "annotations": {
                keys::ANNOTATION_GPU_ASSIGNMENT: "not a valid assignment",
                keys::ANNOTATION_GPU_MODELS: "H100,H200",
                keys::ANNOTATION_BIND_TIME: "2026-12-07T08:00:00Z",
                "kubectl.kubernetes.io/last-applied-configuration": "{\"big\": true}"
            },
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "zk",
                                 "uid": "a1", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                               "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}],
            "deletionTimestamp": "2026-12-07T09:00:00Z"
        },
        "spec": {
            "schedulerName": "tessera-scheduler",
            "nodeName": "gpu-7",
            "priority": 1000,
            "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
            "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "tessera-share-8192mi-25"}],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "initContainers": [
                {"name": "setup", "image": "busybox",
                 "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}},
                {"name": "proxy", "image": "envoy", "restartPolicy": "Always",
                 "securityContext": {"runAsUser": 1000},
                 "resources": {"limits": {keys::RESOURCE_GPU_MEM: "1024", keys::RESOURCE_GPU_CORE: "10"},
                               "requests": {"cpu": "100m"}}}
            ],
            "containers": [
                {"name": "main", "image": "zk:3.8",
                 "env": [{"name": "A", "value": "b"}],
                 "securityContext": {"runAsUser": 1000, "privileged": false},
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                 "resources": {"limits": {keys::RESOURCE_GPU: "1", keys::RESOURCE_GPU_MEM: "4096",
                                          keys::RESOURCE_GPU_CORE: "25", "cpu": "4"},
                               "requests": {"cpu": "1", "memory": "2Gi"},
                               "claims": [{"name": "gpu"}]}},
                {"name": "hami", "image": "x",
                 "resources": {"limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "2000",
                                          "aliyun.com/gpu-mem": "3"}}}
            ]
        },
        "status": {
            "phase": "Succeeded",
            "conditions": [{"type": "Ready", "status": "False"}],
            "resourceClaimStatuses": [{"name": "gpu", "resourceClaimName": "zk-1-gpu-x7k2p"}]
        }
    })
}

/// Every pod the repository's fixtures hold: admission requests' objects and the extender's
/// `Pod`s.
fn fixture_pods() -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut pods = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("fixtures").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(&std::fs::read_to_string(&path).unwrap())
            else {
                continue;
            };
            for pod in [&v["request"]["object"], &v["Pod"]] {
                if pod.get("spec").is_some() && pod.get("metadata").is_some() {
                    pods.push(pod.clone());
                }
            }
        }
    }
    pods
}

fn contexts() -> Vec<RequestContext> {
    let mut out = Vec::new();
    for gpushare in [false, true] {
        for hami in [false, true] {
            out.push(RequestContext {
                translation: Translation { gpushare, hami },
                largest_gpu_mib: None,
            });
        }
    }
    out
}

#[test]
fn decisions_match_the_whole_pod() {
    let pods: Vec<Value> = std::iter::once(rich_pod()).chain(fixture_pods()).collect();
    assert!(pods.len() > 5, "fixtures found: {}", pods.len());
    for value in pods {
        let whole: Pod = serde_json::from_value(value.clone()).unwrap();
        let slim: SlimPod = serde_json::from_value(value).unwrap();
        let name = whole.metadata.name.clone().unwrap_or_default();
        assert_eq!(
            PodFacts::from_pod(&whole),
            PodFacts::from_pod(&slim),
            "{name}"
        );
        assert_eq!(pod_group(&whole), pod_group(&slim), "{name}");
        for ctx in contexts() {
            assert_eq!(
                request::pod_request(&whole, ctx),
                request::pod_request(&slim, ctx),
                "{name}"
            );
        }
        let (w, s) = (&whole.metadata, &slim.metadata);
        assert_eq!(
            (&w.name, &w.namespace, &w.uid, &w.resource_version),
            (&s.name, &s.namespace, &s.uid, &s.resource_version)
        );
        let claims = |p: &Pod| {
            (
                p.spec.as_ref().and_then(|s| s.resource_claims.clone()),
                p.status
                    .as_ref()
                    .and_then(|s| s.resource_claim_statuses.clone()),
            )
        };
        assert_eq!(claims(&whole), claims(&slim), "{name}");
    }
}

#[test]
fn what_the_decisions_never_read_is_not_kept() {
    let slim: SlimPod = serde_json::from_value(rich_pod()).unwrap();
    assert_eq!(slim.metadata.managed_fields, None);
    let spec = slim.spec.as_ref().unwrap();
    assert_eq!(spec.volumes, None);
    assert_eq!(spec.containers[0].env, None);
    assert_eq!(spec.containers[0].image, None);
    assert_eq!(slim.status.as_ref().unwrap().conditions, None);
    // And what they read is.
    assert_eq!(spec.priority, Some(1000));
    assert_eq!(
        spec.containers[0]
            .security_context
            .as_ref()
            .unwrap()
            .run_as_user,
        Some(1000)
    );
}

#[test]
fn a_pod_the_whole_decoding_refuses_is_refused() {
    let mut bad = rich_pod();
    bad["spec"]["priority"] = json!("high");
    assert!(serde_json::from_value::<Pod>(bad.clone()).is_err());
    let err = serde_json::from_value::<SlimPod>(bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid type"), "{err}");
}
