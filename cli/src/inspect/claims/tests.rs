#![allow(clippy::unwrap_used)]

use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceSlice};
use serde_json::json;

use super::view;

fn fixture(name: &str) -> ResourceClaim {
    let path = format!(
        "{}/../tests/fixtures/dra/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A slice as `tessera dra-plugin` publishes it for one node of two 80 GiB GPUs, the second
/// without live MPS isolation.
fn slice(pool: &str) -> ResourceSlice {
    let gpu = |index: u32, taints: serde_json::Value| {
        json!({
            "name": format!("gpu-{index}"),
            "allowMultipleAllocations": true,
            "capacity": {
                "memory": {"value": "80Gi"},
                "compute": {"value": "100"}
            },
            "taints": taints
        })
    };
    serde_json::from_value(json!({
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": format!("{pool}-gpu.tessera.dev")},
        "spec": {
            "driver": "gpu.tessera.dev",
            "nodeName": pool,
            "pool": {"name": pool, "generation": 1, "resourceSliceCount": 1},
            "devices": [
                gpu(0, json!([])),
                gpu(1, json!([{"key": "gpu.tessera.dev/mps-not-ready", "effect": "NoSchedule"}]))
            ]
        }
    }))
    .unwrap()
}

fn pending_claim(ns: &str, name: &str) -> ResourceClaim {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {
            "deviceClassName": "gpu.tessera.dev",
            "capacity": {"requests": {"memory": "64Gi", "compute": "60"}}
        }}]}}
    }))
    .unwrap()
}

#[test]
fn shares_of_one_gpu_add_up_on_it_with_their_pods_and_the_pending_claim_is_named() {
    let claims = [
        fixture("resourceclaim.8gi-25.json"),
        fixture("resourceclaim.16gi-50.json"),
        pending_claim("ml", "too-big"),
    ];
    let v = view(&[slice("gpu-node-1")], &claims, None);
    assert_eq!(v.devices.len(), 2);
    let gpu0 = &v.devices[0];
    assert_eq!(gpu0.device, "gpu-0");
    assert_eq!(gpu0.memory_bytes, 80 << 30);
    assert_eq!(gpu0.memory_held, 24 << 30, "8 GiB + 16 GiB");
    assert_eq!(gpu0.compute_held, 75, "25% + 50%");
    assert_eq!(gpu0.claims.len(), 2);
    assert!(gpu0.taints.is_empty());
    assert_eq!(v.devices[1].taints, ["gpu.tessera.dev/mps-not-ready"]);
    assert_eq!(v.devices[1].memory_held, 0);
    assert_eq!(v.shares.len(), 2);
    let large = v
        .shares
        .iter()
        .find(|s| s.claim == "ml/share-large")
        .unwrap();
    assert_eq!(large.memory_bytes, Some(16 << 30));
    assert_eq!(large.compute_percent, Some(50));
    assert_eq!(large.pods, ["ml/trainer-large"]);
    assert_eq!(v.pending, ["ml/too-big"]);
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    let table = v.table();
    for want in [
        "24.0Gi/80.0Gi",
        "75%",
        "ml/share-large",
        "16.0Gi",
        "pending: ml/too-big",
    ] {
        assert!(table.contains(want), "{want:?} missing from\n{table}");
    }
}

#[test]
fn another_namespace_sees_the_gpus_full_but_not_the_claims() {
    let claims = [fixture("resourceclaim.16gi-50.json")];
    let v = view(&[slice("gpu-node-1")], &claims, Some("other"));
    assert!(v.shares.is_empty());
    assert!(v.devices[0].claims.is_empty());
    assert_eq!(
        v.devices[0].memory_held,
        16 << 30,
        "free room is shared by every namespace"
    );
}

#[test]
fn a_bad_consumed_quantity_is_a_warning_naming_the_claim() {
    let mut claim = fixture("resourceclaim.8gi-25.json");
    let mut value = serde_json::to_value(&claim).unwrap();
    value["status"]["allocation"]["devices"]["results"][0]["consumedCapacity"]["memory"] =
        json!("lots");
    claim = serde_json::from_value(value).unwrap();
    let v = view(&[slice("gpu-node-1")], &[claim], None);
    assert_eq!(v.warnings.len(), 1);
    assert!(v.warnings[0].contains("memory"), "{:?}", v.warnings);
    assert!(
        v.warnings[0].starts_with("resourceclaim ml/"),
        "{:?}",
        v.warnings
    );
}
