//! The DRA rewrite on small pods: each case applies the whole answer to the pod as given, reads
//! the result as a k8s-openapi `Pod`, and sends it through again expecting no patch.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::*;
use crate::{InjectionProfileSpec, compile_all};
use tessera_kernel::request::GpuDemand;

fn profiles(yaml: &str) -> Vec<Profile> {
    let specs: BTreeMap<String, InjectionProfileSpec> = serde_yaml_ng::from_str(yaml).unwrap();
    let (ok, bad) = compile_all(specs);
    assert!(bad.is_empty(), "{bad:?}");
    ok
}

/// The shipped gpu-sharing profile's GPU part: both dialects, the Tessera scheduler.
const GPU_SHARING: &str = r#"
gpu-sharing:
  selector: {matchLabels: {tessera.dev/gpu-sharing: enabled}}
  gpu: {gpushare: true, hami: true, schedulerName: tessera-scheduler}
"#;

fn ctx() -> Context<'static> {
    Context {
        namespace: "ml",
        cluster_domain: "cluster.local",
        ..Context::default()
    }
}

/// Applies `mutate_dra`'s answer and checks that a second pass (reinvocation) adds nothing.
fn run(profiles: &[Profile], pod: &Value) -> (Outcome, Pod, Value) {
    let out = mutate_dra(profiles, &pod.to_string(), &ctx()).unwrap();
    let mut doc = pod.clone();
    let patch: json_patch::Patch =
        serde_json::from_value(serde_json::to_value(&out.ops).unwrap()).unwrap();
    json_patch::patch(&mut doc, &patch).unwrap();
    let typed: Pod = serde_json::from_value(doc.clone()).unwrap();
    let second = mutate_dra(profiles, &doc.to_string(), &ctx()).unwrap();
    assert!(
        second.ops.is_empty(),
        "second pass patched: {:?}",
        second.ops
    );
    (out, typed, doc)
}

fn pod(limits: Value) -> Value {
    json!({"metadata": {"name": "train", "namespace": "ml"},
           "spec": {"containers": [{"name": "main", "image": "app:1",
                                    "resources": {"limits": limits}}]}})
}

#[test]
fn tessera_names_become_a_claim_from_the_template_of_the_share() {
    let (_, typed, doc) = run(
        &[],
        &pod(json!({"tessera.dev/gpu-mem": "8192", "tessera.dev/gpu-core": "25", "cpu": "1"})),
    );
    let c = &doc["spec"]["containers"][0];
    assert_eq!(c["resources"]["limits"], json!({"cpu": "1"}));
    assert_eq!(c["resources"]["claims"], json!([{"name": "tessera-gpu-0"}]));
    assert_eq!(
        doc["spec"]["resourceClaims"],
        json!([{"name": "tessera-gpu-0", "resourceClaimTemplateName": "tessera-share-8192mi-25"}])
    );
    assert_eq!(doc["metadata"]["labels"]["tessera.dev/gpu-path"], "dra");
    // Nothing of Tessera's extended resources is left for a device plugin to serve.
    let req = tessera_kernel::request::pod_request(&typed, Default::default()).unwrap();
    assert!(!req.holds_gpus());
}

#[test]
fn gpushare_names_are_normalised_by_the_profile_then_rewritten() {
    let mut p = pod(json!({"aliyun.com/gpu-mem": "4"}));
    p["metadata"]["labels"] = json!({"tessera.dev/gpu-sharing": "enabled"});
    let (out, _, doc) = run(&profiles(GPU_SHARING), &p);
    assert_eq!(out.applied, ["gpu-sharing"]);
    // 4 GiB, no compute named: a memory share holds no compute, as on the other path.
    assert_eq!(
        doc["spec"]["resourceClaims"][0]["resourceClaimTemplateName"],
        "tessera-share-4096mi-0"
    );
    assert_eq!(
        doc["spec"]["containers"][0]["resources"]["limits"],
        json!({})
    );
    assert_eq!(doc["spec"]["schedulerName"], "tessera-scheduler");
}

#[test]
fn hami_names_are_normalised_by_the_profile_then_rewritten() {
    let mut p = pod(json!({"nvidia.com/gpu": "2", "nvidia.com/gpumem": "3000",
                           "nvidia.com/gpucores": "30"}));
    p["metadata"]["labels"] = json!({"tessera.dev/gpu-sharing": "enabled"});
    p["spec"]["containers"][0]["resources"]["requests"] = json!({"nvidia.com/gpu": "2"});
    let (_, _, doc) = run(&profiles(GPU_SHARING), &p);
    let c = &doc["spec"]["containers"][0]["resources"];
    assert_eq!((&c["limits"], &c["requests"]), (&json!({}), &json!({})));
    // 3000 MiB goes up to the plugin's 256 MiB grid; two GPUs.
    assert_eq!(
        doc["spec"]["resourceClaims"][0]["resourceClaimTemplateName"],
        "tessera-share-2x-3072mi-30"
    );
}

#[test]
fn foreign_names_without_the_profile_are_left_with_a_warning() {
    let p = pod(json!({"nvidia.com/gpumem": "3000"}));
    let out = mutate_dra(&profiles(GPU_SHARING), &p.to_string(), &ctx()).unwrap();
    assert!(out.ops.is_empty(), "{:?}", out.ops);
    assert!(
        out.warnings[0].contains("nvidia.com/gpumem"),
        "{:?}",
        out.warnings
    );
}

#[test]
fn every_share_container_gets_its_own_claim_and_a_container_without_gpu_is_untouched() {
    let p = json!({"metadata": {"name": "p", "namespace": "ml", "labels": {"app": "x"}},
        "spec": {
            "initContainers": [
                {"name": "warm", "image": "w:1",
                 "resources": {"limits": {"tessera.dev/gpu-mem": "1024", "tessera.dev/gpu-core": "10"}}}],
            "containers": [
                {"name": "a", "image": "a:1",
                 "resources": {"limits": {"tessera.dev/gpu-mem": "8192", "tessera.dev/gpu-core": "25"}}},
                {"name": "log", "image": "l:1", "resources": {"limits": {"cpu": "1"}}},
                {"name": "b", "image": "b:1",
                 "resources": {"limits": {"tessera.dev/gpu": "1"}, "claims": [{"name": "own"}]}}],
            "resourceClaims": [{"name": "own", "resourceClaimName": "mine"}]}});
    let (_, _, doc) = run(&[], &p);
    let s = &doc["spec"];
    assert_eq!(
        s["resourceClaims"],
        json!([
            {"name": "own", "resourceClaimName": "mine"},
            {"name": "tessera-gpu-init-0", "resourceClaimTemplateName": "tessera-share-1024mi-10"},
            {"name": "tessera-gpu-0", "resourceClaimTemplateName": "tessera-share-8192mi-25"},
            {"name": "tessera-gpu-2", "resourceClaimTemplateName": "tessera-share-whole-100"}
        ])
    );
    assert_eq!(
        s["initContainers"][0]["resources"]["claims"],
        json!([{"name": "tessera-gpu-init-0"}])
    );
    assert_eq!(
        s["containers"][1], p["spec"]["containers"][1],
        "no GPU: untouched"
    );
    assert_eq!(
        s["containers"][2]["resources"]["claims"],
        json!([{"name": "own"}, {"name": "tessera-gpu-2"}])
    );
    assert_eq!(
        doc["metadata"]["labels"],
        json!({"app": "x", "tessera.dev/gpu-path": "dra"})
    );
}

#[test]
fn a_pod_without_gpu_gets_no_patch() {
    let out = mutate_dra(&[], &pod(json!({"cpu": "1"})).to_string(), &ctx()).unwrap();
    assert!(out.ops.is_empty() && out.warnings.is_empty());
}

#[test]
fn bad_requests_are_refused_naming_container_resource_and_value() {
    let cases = [
        (
            json!({"tessera.dev/gpu-core": "150"}),
            "tessera.dev/gpu-core = 150",
        ),
        (json!({"tessera.dev/gpu-mem": "lots"}), "\"lots\""),
        (
            json!({"tessera.dev/gpu": "0", "tessera.dev/gpu-mem": "1024"}),
            "tessera.dev/gpu must be at least 1",
        ),
    ];
    for (limits, says) in cases {
        let err = mutate_dra(&[], &pod(limits).to_string(), &ctx()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"main\"") && text.contains(says), "{text}");
    }
}

#[test]
fn a_claim_name_already_used_for_something_else_is_refused() {
    let mut p = pod(json!({"tessera.dev/gpu-mem": "1024"}));
    p["spec"]["resourceClaims"] = json!([{"name": "tessera-gpu-0", "resourceClaimName": "x"}]);
    let err = mutate_dra(&[], &p.to_string(), &ctx()).unwrap_err();
    assert!(matches!(err, DraError::ClaimTaken { .. }), "{err}");
    assert!(err.to_string().contains("tessera-gpu-0"), "{err}");
}

#[test]
fn a_pod_that_does_not_decode_is_an_error() {
    let err = mutate_dra(&[], "{\"spec\": 3}", &ctx()).unwrap_err();
    assert!(matches!(err, DraError::Decode(_)), "{err}");
}

#[test]
fn template_names_round_trip_and_foreign_spellings_are_not_ours() {
    for share in [
        Share {
            gpus: 1,
            memory_mib: Some(8192),
            percent: 25,
        },
        Share {
            gpus: 3,
            memory_mib: None,
            percent: 100,
        },
        Share {
            gpus: 2,
            memory_mib: Some(256),
            percent: 1,
        },
        Share {
            gpus: 1,
            memory_mib: Some(4096),
            percent: 0,
        },
    ] {
        assert_eq!(
            Share::from_template_name(&share.template_name()),
            Some(share)
        );
    }
    for name in [
        "tessera-share-8192mi-00",
        "tessera-share-8192mi-101",
        "tessera-share-1000mi-25",
        "tessera-share-08192mi-25",
        "tessera-share-1x-8192mi-25",
        "tessera-share-0x-whole-100",
        "tessera-share-8192mi",
        "tessera-share-big",
        "other-8192mi-25",
    ] {
        assert_eq!(Share::from_template_name(name), None, "{name}");
    }
}

#[test]
fn the_template_asks_the_plugins_capacities_and_distinct_gpus() {
    let share = Share {
        gpus: 2,
        memory_mib: Some(8192),
        percent: 25,
    };
    let t = serde_json::to_value(template("ml", &share)).unwrap();
    assert_eq!(t["metadata"]["name"], "tessera-share-2x-8192mi-25");
    assert_eq!(
        t["metadata"]["labels"]["app.kubernetes.io/part-of"],
        "tessera"
    );
    let devices = &t["spec"]["spec"]["devices"];
    assert_eq!(
        devices["requests"][0],
        json!({"name": "gpu", "exactly": {"deviceClassName": "gpu.tessera.dev",
            "allocationMode": "ExactCount", "count": 2,
            "capacity": {"requests": {"memory": "8192Mi", "compute": "25"}}}})
    );
    assert_eq!(
        devices["constraints"],
        json!([{"requests": ["gpu"], "distinctAttribute": "gpu.tessera.dev/uuid"}])
    );
    let whole = serde_json::to_value(template(
        "ml",
        &Share {
            gpus: 1,
            memory_mib: None,
            percent: 100,
        },
    ))
    .unwrap();
    assert_eq!(
        whole["spec"]["spec"]["devices"]["requests"][0]["exactly"]["capacity"],
        json!({"requests": {"compute": "100"}})
    );
    assert!(
        whole["spec"]["spec"]["devices"]
            .get("constraints")
            .is_none()
    );
}

#[test]
fn a_memory_share_alone_asks_no_compute() {
    // As on the device-plugin path: no compute held (so it packs beside compute shares) and no
    // thread limit; asking the plugin's default would hold the GPU's whole compute.
    let demand = GpuDemand {
        gpus: 1,
        mem_mib: 4000,
        mem_percent: 0,
        core_milli: 0,
    };
    let share = Share::of(&demand);
    assert_eq!(share.template_name(), "tessera-share-4096mi-0");
    let t = serde_json::to_value(template("ml", &share)).unwrap();
    assert_eq!(
        t["spec"]["spec"]["devices"]["requests"][0]["exactly"]["capacity"],
        json!({"requests": {"memory": "4096Mi", "compute": "0"}})
    );
    let whole = Share::of(&GpuDemand::whole(1));
    assert_eq!(whole.template_name(), "tessera-share-whole-100");
}

#[test]
fn templates_of_a_pod_are_those_it_names_each_once() {
    let p: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "ml"},
        "spec": {"containers": [{"name": "a"}], "resourceClaims": [
            {"name": "a", "resourceClaimTemplateName": "tessera-share-8192mi-25"},
            {"name": "b", "resourceClaimTemplateName": "tessera-share-8192mi-25"},
            {"name": "c", "resourceClaimTemplateName": "someone-elses"},
            {"name": "d", "resourceClaimName": "x"}]}}))
    .unwrap();
    let ts = templates_of(&p);
    assert_eq!(ts.len(), 1);
    assert_eq!(ts[0].metadata.namespace.as_deref(), Some("ml"));
}

#[test]
fn a_claim_already_made_needs_no_template_again() {
    let p: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "ml"},
        "spec": {"containers": [{"name": "a"}], "resourceClaims": [
            {"name": "a", "resourceClaimTemplateName": "tessera-share-8192mi-25"},
            {"name": "b", "resourceClaimTemplateName": "tessera-share-4096mi-0"}]},
        "status": {"resourceClaimStatuses": [
            {"name": "a", "resourceClaimName": "p-a-x7k2p"},
            {"name": "b"}]}}))
    .unwrap();
    let names: Vec<_> = templates_of(&p)
        .into_iter()
        .filter_map(|t| t.metadata.name)
        .collect();
    assert_eq!(names, ["tessera-share-4096mi-0"]);
}
