//! `/mutate-dra` (namespaces on the DRA path) with the shipped profiles against AdmissionReviews
//! a real kube-apiserver sent (tests/fixtures/admission), over real HTTPS: each container's GPU
//! share, in Tessera's, gpushare's or HAMi's names, leaves its extended resources for a claim
//! from a `tessera-share-*` template; the patch applies to the object as received, equals the
//! golden one, and a second pass (reinvocation, also after `/mutate`) adds nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod webhook_support;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use webhook_support::{
    Client, Server, admitted_as_golden, apply, fixture, patch_of, server_and_client, with_object,
};

const DRA: &str = "/mutate-dra";

async fn setup() -> (Server, Client) {
    server_and_client("dra-test").await
}

/// Posts `review` to `/mutate-dra`, applies the patch, checks the golden patch and that neither
/// `/mutate-dra` nor `/mutate` patches the result again.
async fn rewrite(client: &mut Client, case: &str, review: &Value) -> (Pod, Value) {
    admitted_as_golden(client, DRA, case, review, &[DRA, "/mutate"]).await
}

/// The captured GPU pod asking with `resources` (limits and requests alike).
fn gpu_pod(resources: Value) -> Value {
    let mut review = fixture("pod-extended-resource-gpu-mem.request.json");
    let c = &mut review["request"]["object"]["spec"]["containers"][0];
    c["resources"] = json!({"limits": resources, "requests": resources});
    review
}

/// The pod's claims: (claim name, template) in order.
fn claims(pod: &Pod) -> Vec<(String, String)> {
    let spec = pod.spec.as_ref().unwrap();
    spec.resource_claims
        .iter()
        .flatten()
        .map(|c| {
            let t = c.resource_claim_template_name.clone().unwrap_or_default();
            (c.name.clone(), t)
        })
        .collect()
}

#[tokio::test]
async fn tessera_names_become_a_claim_and_the_pod_keeps_its_scheduler() {
    let (_server, mut client) = setup().await;
    let mut review = gpu_pod(json!({"tessera.dev/gpu-mem": "8192", "tessera.dev/gpu-core": "25"}));
    review["request"]["object"]["spec"]["schedulerName"] = json!("tessera-scheduler");
    let (pod, _) = rewrite(&mut client, "dra-tessera-names", &review).await;
    assert_eq!(
        claims(&pod),
        [("tessera-gpu-0".into(), "tessera-share-8192mi-25".into())]
    );
    let spec = pod.spec.unwrap();
    assert_eq!(spec.scheduler_name.as_deref(), Some("tessera-scheduler"));
    let res = spec.containers[0].resources.clone().unwrap();
    assert!(res.limits.unwrap().is_empty() && res.requests.unwrap().is_empty());
    assert_eq!(res.claims.unwrap()[0].name, "tessera-gpu-0");
    let labels = pod.metadata.labels.unwrap();
    assert_eq!(labels["tessera.dev/gpu-path"], "dra");
}

#[tokio::test]
async fn gpushare_names_are_normalised_by_the_shipped_profile_then_rewritten() {
    let (_server, mut client) = setup().await;
    let mut review = gpu_pod(json!({"aliyun.com/gpu-mem": "4"}));
    review["request"]["object"]["metadata"]["annotations"] =
        json!({"tessera.dev/inject": "gpu-sharing"});
    let (pod, _) = rewrite(&mut client, "dra-gpushare", &review).await;
    assert_eq!(
        claims(&pod),
        [("tessera-gpu-0".into(), "tessera-share-4096mi-0".into())]
    );
    assert_eq!(
        pod.spec.unwrap().scheduler_name.as_deref(),
        Some("tessera-scheduler")
    );
}

/// HAMi's names in the captured pod's init container and native sidecar: each gets its own
/// claim, by its index in the pod as received.
#[tokio::test]
async fn hami_names_in_init_containers_and_native_sidecars_get_a_claim_each() {
    let (_server, mut client) = setup().await;
    let mut review = fixture("pod-native-sidecar.request.json");
    let o = &mut review["request"]["object"];
    o["metadata"]["annotations"] = json!({"tessera.dev/inject": "gpu-sharing"});
    for (i, mem, cores) in [(0, "2048", "20"), (1, "1000", "10")] {
        let r =
            json!({"nvidia.com/gpu": "1", "nvidia.com/gpumem": mem, "nvidia.com/gpucores": cores});
        o["spec"]["initContainers"][i]["resources"] = json!({"limits": r, "requests": r});
    }
    let (pod, _) = rewrite(&mut client, "dra-hami-init-containers", &review).await;
    assert_eq!(
        claims(&pod),
        [
            (
                "tessera-gpu-init-0".into(),
                "tessera-share-2048mi-20".into()
            ),
            // 1000 MiB goes up to the DRA plugin's 256 MiB grid.
            (
                "tessera-gpu-init-1".into(),
                "tessera-share-1024mi-10".into()
            ),
        ]
    );
    let init = pod.spec.unwrap().init_containers.unwrap();
    let names: Vec<String> = init
        .iter()
        .map(|c| c.resources.clone().unwrap().claims.unwrap()[0].name.clone())
        .collect();
    assert_eq!(names, ["tessera-gpu-init-0", "tessera-gpu-init-1"]);
}

/// The same pod through `/mutate` first (as the apiserver calls the entries in order), then
/// `/mutate-dra`: the profile is applied once, the share rewritten once.
#[tokio::test]
async fn after_mutate_the_dra_entry_only_rewrites() {
    let (_server, mut client) = setup().await;
    let mut review = gpu_pod(json!({"aliyun.com/gpu-mem": "4"}));
    review["request"]["object"]["metadata"]["annotations"] =
        json!({"tessera.dev/inject": "gpu-sharing"});
    let (_, resp) = client.mutate(&review).await;
    let first = apply(&review, &patch_of(&review, &resp).unwrap());
    let review = with_object(&review, first);
    let (pod, _) = rewrite(&mut client, "dra-after-mutate", &review).await;
    assert_eq!(
        claims(&pod),
        [("tessera-gpu-0".into(), "tessera-share-4096mi-0".into())]
    );
}

#[tokio::test]
async fn a_bad_request_is_denied_naming_container_resource_and_value() {
    let (_server, mut client) = setup().await;
    let review = gpu_pod(json!({"tessera.dev/gpu-mem": "1024", "tessera.dev/gpu-core": "150"}));
    let (status, resp) = client.mutate_at(DRA, &review).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["response"]["allowed"], false, "{resp}");
    let message = resp["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("container \"cuda\": tessera.dev/gpu-core = 150 is outside"),
        "{message}"
    );
}

#[tokio::test]
async fn pods_without_gpus_get_no_patch_and_mutate_never_rewrites() {
    let (_server, mut client) = setup().await;
    for file in ["pod-bare.request.json", "pod-generatename.request.json"] {
        let review = fixture(file);
        let (_, resp) = client.mutate_at(DRA, &review).await;
        assert!(patch_of(&review, &resp).is_none(), "{file}: {resp}");
    }
    let review = gpu_pod(json!({"tessera.dev/gpu-mem": "8192"}));
    let (_, resp) = client.mutate(&review).await;
    assert!(patch_of(&review, &resp).is_none(), "/mutate: {resp}");
}
