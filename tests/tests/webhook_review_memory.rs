//! A pod create cannot buy the webhook memory it did not send: a ZooKeeper member with a 300 KB
//! StatefulSet owner name (or `spec.subdomain`) at ordinal 999 is refused on its names before any
//! peer list is rendered. The peak memory of the review, counted by a global allocator, stays a
//! small multiple of the body (it rendered 312 MiB before names were checked first).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use prometheus_client::registry::Registry;
use serde_json::json;
use std::time::Duration;
use tessera_tests::bounds::{Counting, cost_of};
use tessera_webhook::WebhookState;
use tessera_webhook::admission::review;
use tessera_webhook::config::AdmissionConfig;
use tessera_webhook::metrics::Metrics;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn member(owner: &str, subdomain: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "operation": "CREATE", "namespace": "default",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "object": {"metadata": {"name": "zk-999", "namespace": "default",
                "labels": {"app": "zk", "apps.kubernetes.io/pod-index": "999"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                    "name": owner, "uid": "s", "controller": true}]},
              "spec": {"subdomain": subdomain,
                "containers": [{"name": "zookeeper", "image": "zk"}]}}}
    }))
    .unwrap()
}

#[test]
fn a_huge_name_is_refused_before_it_is_rendered_a_thousand_times() {
    let mut registry = Registry::default();
    let state = WebhookState::new(
        AdmissionConfig {
            cluster_domain: "cluster.local".into(),
            spiffe: None,
        },
        Metrics::register(&mut registry),
        Duration::from_secs(5),
    );
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/profiles/zookeeper.yaml"
    ))
    .unwrap();
    state.set_profiles(tessera_webhook::profiles::parse(&text).profiles, 0);
    let huge = "z".repeat(300_000);
    for (what, body) in [
        ("owner name", member(&huge, "zk-hs")),
        ("subdomain", member("zk", &huge)),
    ] {
        let (answer, peak, _) = cost_of(|| review(&state, &body).unwrap());
        let text = String::from_utf8(answer.body).unwrap();
        assert!(
            text.contains("\"allowed\":false"),
            "{what}: {}",
            &text[..200.min(text.len())]
        );
        println!(
            "{what}: a {} byte review peaked at {peak} bytes",
            body.len()
        );
        assert!(
            peak < 4 * body.len(),
            "{what}: {} bytes peaked at {peak}",
            body.len()
        );
    }
}
