use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceSlice};
use serde_json::{Value, json};

use super::*;
use crate::decide;
use crate::ledger::SharingPolicy;
use crate::request::GpuDemand;
use crate::score::Policy;

/// A slice as `tessera dra-plugin` publishes it: `gpus` GPUs of 16 GiB on `node`, the taints
/// given per GPU index.
fn slice(node: &str, gpus: u32, taints: &[(u32, &str)]) -> SliceFacts {
    let devices: Vec<Value> = (0..gpus)
        .map(|i| {
            let t: Vec<Value> = taints
                .iter()
                .filter(|(g, _)| *g == i)
                .map(|(_, k)| json!({"key": k, "effect": "NoSchedule"}))
                .collect();
            json!({
                "name": format!("gpu-{i}"),
                "allowMultipleAllocations": true,
                "attributes": {"index": {"int": i}, "productName": {"string": "Tesla-T4"},
                               "mpsMultiUser": {"bool": true}},
                "capacity": {"memory": {"value": "16Gi"}, "compute": {"value": "100"}},
                "taints": t,
            })
        })
        .collect();
    let s: ResourceSlice = serde_json::from_value(json!({
        "metadata": {"name": format!("{node}-gpu.tessera.dev")},
        "spec": {"driver": DRIVER, "nodeName": node,
                 "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
                 "devices": devices}
    }))
    .unwrap();
    SliceFacts::from_slice(&s).unwrap()
}

fn request(name: &str, capacity: Value) -> Value {
    json!({"name": name, "exactly": {"deviceClassName": DRIVER, "capacity": {"requests": capacity}}})
}

/// A claim `ns/name` asking `capacity`, allocated on `(pool, device)` with `consumed` if given.
fn claim(name: &str, capacity: Value, on: Option<(&str, &str, Value)>) -> ClaimFacts {
    let status = on.map(|(pool, device, consumed)| {
        json!({"allocation": {"devices": {"results": [{
            "request": "gpu", "driver": DRIVER, "pool": pool, "device": device,
            "consumedCapacity": consumed}]}}})
    });
    let c: ResourceClaim = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {"devices": {"requests": [request("gpu", capacity)]}},
        "status": status,
    }))
    .unwrap();
    ClaimFacts::from_claim(&c)
}

fn template_requests(capacity: Value) -> Vec<RequestShape> {
    let spec = serde_json::from_value(json!({"devices": {"requests": [request("gpu", capacity)]}}))
        .unwrap();
    spec_requests(&spec)
}

fn pod_with_template(template: &str) -> PodClaims {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ml"},
        "spec": {"containers": [{"name": "main"}],
                 "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": template}]}
    }))
    .unwrap();
    PodClaims::from_pod(&pod)
}

fn free(c: &DraCluster, node: &str, gpu: usize) -> (u64, u32) {
    let g = &c.ledger().node(node).unwrap().gpus[gpu];
    (g.mem_free_mib, g.core_free)
}

#[test]
fn a_slice_becomes_a_node_of_gpus_named_by_pool_and_device() {
    let mut c = DraCluster::new(SharingPolicy::IsolatedOnly);
    c.apply_slice(slice("n1", 2, &[]));
    let node = c.ledger().node("n1").unwrap();
    assert_eq!(node.gpus.len(), 2);
    assert_eq!(node.gpus[1].ident.uuid, "n1/gpu-1");
    assert_eq!(node.gpus[1].mem_total_mib, 16384);
}

#[test]
fn another_drivers_slice_is_not_read() {
    let s: ResourceSlice = serde_json::from_value(json!({
        "metadata": {"name": "x"},
        "spec": {"driver": "gpu.nvidia.com", "nodeName": "n1",
                 "pool": {"name": "n1", "generation": 1, "resourceSliceCount": 1}}
    }))
    .unwrap();
    assert_eq!(SliceFacts::from_slice(&s), None);
}

#[test]
fn an_allocated_claim_holds_what_it_consumed_and_is_freed_when_deleted() {
    let mut c = DraCluster::new(SharingPolicy::IsolatedOnly);
    c.apply_slice(slice("n1", 2, &[]));
    let consumed = json!({"memory": "8Gi", "compute": "25"});
    let small = claim("small", consumed.clone(), Some(("n1", "gpu-1", consumed)));
    assert!(c.apply_claim(small).is_empty());
    assert_eq!(free(&c, "n1", 1), (8192, 750));
    assert_eq!(free(&c, "n1", 0), (16384, 1000));
    c.remove_claim("ml/small");
    assert_eq!(free(&c, "n1", 1), (16384, 1000));
}

#[test]
fn a_claim_consuming_no_named_capacity_holds_the_whole_gpu() {
    let mut c = DraCluster::new(SharingPolicy::IsolatedOnly);
    c.apply_slice(slice("n1", 1, &[]));
    c.apply_claim(claim("whole", json!({}), Some(("n1", "gpu-0", json!({})))));
    assert_eq!(free(&c, "n1", 0), (0, 0));
}

#[test]
fn a_claim_seen_before_its_slice_is_counted_once_the_slice_comes() {
    let mut c = DraCluster::new(SharingPolicy::IsolatedOnly);
    let consumed = json!({"memory": "4Gi", "compute": "10"});
    c.apply_claim(claim(
        "early",
        consumed.clone(),
        Some(("n1", "gpu-0", consumed)),
    ));
    assert_eq!(c.unplaced_claims(), vec!["ml/early".to_string()]);
    c.apply_slice(slice("n1", 1, &[]));
    assert!(c.unplaced_claims().is_empty());
    assert_eq!(free(&c, "n1", 0), (12288, 900));
    // The slice going away and coming back keeps the share.
    c.resync_slices(Vec::new());
    assert_eq!(c.unplaced_claims(), vec!["ml/early".to_string()]);
    c.resync_slices(vec![slice("n1", 1, &[])]);
    assert_eq!(free(&c, "n1", 0), (12288, 900));
}

#[test]
fn demands_are_read_from_capacity_requests_with_the_drivers_defaults_and_grid() {
    let cases = [
        (
            "memory and compute",
            json!({"memory": "8Gi", "compute": "25"}),
            GpuDemand {
                gpus: 1,
                mem_mib: 8192,
                mem_percent: 0,
                core_milli: 250,
            },
        ),
        (
            "memory rounded up to 256 MiB",
            json!({"memory": "1000Mi", "compute": "5"}),
            GpuDemand {
                gpus: 1,
                mem_mib: 1024,
                mem_percent: 0,
                core_milli: 50,
            },
        ),
        (
            "no compute: 100%, the GPU held whole",
            json!({"memory": "2Gi"}),
            GpuDemand {
                gpus: 1,
                mem_mib: 2048,
                mem_percent: 0,
                core_milli: 1000,
            },
        ),
        (
            "compute 0: a memory share alone holds none",
            json!({"memory": "4Gi", "compute": "0"}),
            GpuDemand {
                gpus: 1,
                mem_mib: 4096,
                mem_percent: 0,
                core_milli: 0,
            },
        ),
        (
            "no memory: all of it",
            json!({"compute": "30"}),
            GpuDemand {
                gpus: 1,
                mem_mib: 0,
                mem_percent: 100,
                core_milli: 300,
            },
        ),
    ];
    for (name, capacity, want) in cases {
        let shapes = template_requests(capacity);
        assert_eq!(shapes.len(), 1, "{name}");
        assert_eq!(shapes[0].demand, Ok(want), "{name}");
    }
}

#[test]
fn a_pod_naming_a_template_asks_its_requests_whatever_the_templates_name() {
    let mut c = DraCluster::new(SharingPolicy::IsolatedOnly);
    let pod = pod_with_template("any-name");
    assert_eq!(
        c.pod_request(&pod),
        Err(DemandError::UnknownTemplate {
            template: "ml/any-name".into()
        })
    );
    c.apply_template(
        "ml/any-name",
        template_requests(json!({"memory": "8Gi", "compute": "25"})),
    );
    let request = c.pod_request(&pod).unwrap().unwrap();
    assert_eq!(request.containers.len(), 1);
    assert_eq!(request.containers[0].container, "gpu/gpu");
    assert_eq!(request.containers[0].demand.core_milli, 250);
}

#[test]
fn a_shared_claim_already_allocated_costs_nothing_new() {
    let mut c = DraCluster::new(SharingPolicy::IsolatedOnly);
    c.apply_slice(slice("n1", 1, &[]));
    let consumed = json!({"memory": "8Gi", "compute": "25"});
    c.apply_claim(claim(
        "shared",
        consumed.clone(),
        Some(("n1", "gpu-0", consumed)),
    ));
    c.apply_claim(claim(
        "fresh",
        json!({"memory": "4Gi", "compute": "10"}),
        None,
    ));
    let pod = |name: &str| PodClaims {
        namespace: "ml".into(),
        refs: vec![ClaimRef {
            name: "gpu".into(),
            claim: Some(name.into()),
            template: None,
        }],
    };
    assert_eq!(c.pod_request(&pod("shared")), Ok(None));
    let fresh = c.pod_request(&pod("fresh")).unwrap().unwrap();
    assert_eq!(fresh.containers[0].demand.mem_mib, 4096);
    assert!(matches!(
        c.pod_request(&pod("missing")),
        Err(DemandError::UnknownClaim { .. })
    ));
}

#[test]
fn other_device_classes_and_pods_without_claims_ask_nothing() {
    let c = DraCluster::new(SharingPolicy::IsolatedOnly);
    assert_eq!(c.pod_request(&PodClaims::default()), Ok(None));
    let spec = serde_json::from_value(json!({"devices": {"requests": [
        {"name": "nic", "exactly": {"deviceClassName": "nic.example.com"}}]}}))
    .unwrap();
    assert!(spec_requests(&spec).is_empty());
}

/// Two nodes of one 16 GiB GPU each, `used`'s holding 12 GiB / 75% (so the typical mix is that
/// class, which the 4 GiB / 25% left on it cannot take: fragmentation), and a claim pod asking
/// 4 GiB / 25%: on `used` it fills the remnant, on the other it leaves 12 GiB / 75% free.
fn two_nodes_one_used(used: &str) -> (DraCluster, crate::request::PodRequest) {
    let mut c = DraCluster::new(SharingPolicy::IsolatedOnly);
    c.apply_slice(slice("n1", 1, &[]));
    c.apply_slice(slice("n2", 1, &[]));
    let consumed = json!({"memory": "12Gi", "compute": "75"});
    c.apply_claim(claim(
        "first",
        consumed.clone(),
        Some((used, "gpu-0", consumed)),
    ));
    c.apply_template(
        "ml/share",
        template_requests(json!({"memory": "4Gi", "compute": "25"})),
    );
    c.refresh_mix();
    let request = c.pod_request(&pod_with_template("share")).unwrap().unwrap();
    (c, request)
}

#[test]
fn binpack_and_fragmentation_put_a_claim_on_the_partly_used_gpu_and_spread_does_not() {
    let nodes = ["n1".to_string(), "n2".to_string()];
    // Both ways round: the choice follows the usage, not the node order.
    for (used, idle) in [("n1", "n2"), ("n2", "n1")] {
        let (c, pod) = two_nodes_one_used(used);
        for (policy, best) in [
            (Policy::Binpack, used),
            (Policy::Fragmentation, used),
            (Policy::Spread, idle),
        ] {
            let scores = decide::prioritize(c.view(policy), &pod, &nodes);
            let top = scores.iter().max_by_key(|(_, s)| *s).unwrap();
            assert_eq!(top.0, best, "{policy:?}, {used} used: {scores:?}");
            assert!(scores.iter().all(|(n, s)| n == best || s < &top.1));
        }
    }
}

#[test]
fn filter_fails_dra_nodes_without_room_and_tainted_gpus_with_the_reason() {
    let mut c = DraCluster::new(SharingPolicy::IsolatedOnly);
    c.apply_slice(slice("full", 1, &[]));
    c.apply_slice(slice("sick", 1, &[(0, TAINT_UNHEALTHY)]));
    c.apply_slice(slice("no-mps", 1, &[(0, TAINT_MPS_NOT_READY)]));
    c.apply_slice(slice("ok", 1, &[]));
    let consumed = json!({"memory": "12Gi", "compute": "50"});
    c.apply_claim(claim(
        "big",
        consumed.clone(),
        Some(("full", "gpu-0", consumed)),
    ));
    c.apply_template(
        "ml/share",
        template_requests(json!({"memory": "8Gi", "compute": "25"})),
    );
    let pod = c.pod_request(&pod_with_template("share")).unwrap().unwrap();
    let names: Vec<String> = ["full", "sick", "no-mps", "ok", "cpu-only"]
        .map(String::from)
        .to_vec();
    let verdict = decide::filter(c.view(Policy::Fragmentation), &pod, &names);
    assert_eq!(verdict.passed, vec!["ok".to_string()]);
    assert!(
        verdict.failed["full"].contains("4096 MiB free, needs 8192"),
        "{verdict:?}"
    );
    assert!(verdict.failed["sick"].contains("unhealthy"), "{verdict:?}");
    assert!(
        verdict.failed["no-mps"].contains("no live MPS isolation"),
        "{verdict:?}"
    );
    assert!(verdict.unresolvable.contains_key("cpu-only"), "{verdict:?}");
}

#[test]
fn the_ledger_is_the_same_whatever_order_slices_and_claims_arrive_in() {
    let slices = || {
        vec![
            slice("n1", 2, &[]),
            slice("n2", 1, &[(0, TAINT_MPS_NOT_READY)]),
        ]
    };
    let consumed = |m: &str, c: &str| json!({"memory": m, "compute": c});
    let claims = || {
        vec![
            claim("a", json!({}), Some(("n1", "gpu-0", consumed("8Gi", "25")))),
            claim("b", json!({}), Some(("n1", "gpu-1", consumed("4Gi", "50")))),
            claim("c", json!({}), Some(("n2", "gpu-0", json!({})))),
            claim("pending", json!({"memory": "4Gi"}), None),
        ]
    };
    let mut slices_first = DraCluster::new(SharingPolicy::IsolatedOnly);
    for s in slices() {
        slices_first.apply_slice(s);
    }
    for c in claims() {
        assert!(slices_first.apply_claim(c).is_empty());
    }
    let mut claims_first = DraCluster::new(SharingPolicy::IsolatedOnly);
    for c in claims().into_iter().rev() {
        claims_first.apply_claim(c);
    }
    for s in slices().into_iter().rev() {
        claims_first.apply_slice(s);
    }
    let mut relisted = DraCluster::new(SharingPolicy::IsolatedOnly);
    relisted.resync_claims(claims());
    relisted.resync_slices(slices());
    for other in [&claims_first, &relisted] {
        assert!(other.unplaced_claims().is_empty());
        assert!(slices_first.ledger().same_state(other.ledger()));
    }
    assert_eq!(slices_first.ledger().pod_count(), 3);
}
