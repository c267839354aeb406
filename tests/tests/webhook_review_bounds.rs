//! A property of the webhook's review, for arbitrary pods shaped like the captured
//! AdmissionReviews (every shipped profile loaded; labels, annotations, containers, env, GPU
//! quantities, ordinals and `tessera.dev/inject` lists drawn at random, valid or not): the heap
//! it peaks at is at most 8× the body plus 12 MiB (injection caps what it renders at 256 KiB and
//! what it copies into containers at 1 MiB, whatever the body; the answer holds that as JSON
//! values, as the JSON Patch and in base64: 6.7 MB at most seen), and its CPU time at most 20 ms plus 2 µs per
//! body byte (debug build; a release build is about ten times faster). A quadratic path or a
//! render that outgrows its input fails it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use prometheus_client::registry::Registry;
use proptest::prelude::*;
use serde_json::{Value, json};
use tessera_tests::bounds::{Counting, cost_of};
use tessera_webhook::WebhookState;
use tessera_webhook::admission::review;
use tessera_webhook::config::AdmissionConfig;
use tessera_webhook::metrics::Metrics;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const FIXTURES: [&str; 6] = [
    "pod-bare.request.json",
    "pod-deployment-web-a.request.json",
    "pod-extended-resource-gpu-mem.request.json",
    "pod-native-sidecar.request.json",
    "pod-statefulset-zk-0.request.json",
    "pod-statefulset-zk-1.request.json",
];

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/admission/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn state() -> WebhookState {
    let mut registry = Registry::default();
    let state = WebhookState::new(
        AdmissionConfig {
            cluster_domain: "cluster.local".into(),
            spiffe: None,
        },
        Metrics::register(&mut registry),
        Duration::from_secs(5),
    );
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/profiles");
    let mut profiles = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        profiles.extend(tessera_webhook::profiles::parse(&text).profiles);
    }
    state.set_profiles(profiles, 0);
    state
}

/// GPU request names the webhook reads (Tessera's, gpushare's, HAMi's) and other resources.
const RESOURCES: [&str; 7] = [
    "tessera.dev/gpu",
    "tessera.dev/gpu-mem",
    "tessera.dev/gpu-core",
    "aliyun.com/gpu-mem",
    "nvidia.com/gpumem",
    "nvidia.com/gpucores",
    "cpu",
];

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,62}"
}

fn quantity() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,6}",
        "[0-9]{1,4}(Mi|Gi|Ki|m)",
        "[0-9a-zA-Z.+-]{0,12}",
    ]
}

fn container() -> impl Strategy<Value = Value> {
    (
        name(),
        prop::collection::vec((name(), ".{0,64}"), 0..20),
        prop::collection::btree_map(prop::sample::select(RESOURCES.to_vec()), quantity(), 0..4),
    )
        .prop_map(|(name, env, limits)| {
            json!({
                "name": name, "image": "app:1",
                "env": env.into_iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
                "resources": {"limits": limits},
            })
        })
}

fn review_body() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(FIXTURES.to_vec()),
        prop::collection::btree_map(
            prop_oneof![
                Just("app".to_string()),
                Just("apps.kubernetes.io/pod-index".to_string()),
                "[a-z.]{1,20}/[a-z-]{1,40}",
            ],
            prop_oneof![
                prop::sample::select(vec!["zk", "kafka", "rocketmq-broker", "web"])
                    .prop_map(String::from),
                "[0-9]{1,10}",
                "[a-z0-9-]{0,63}",
            ],
            0..12,
        ),
        prop::collection::vec(name(), 0..40),
        0usize..20_000,
        prop::collection::vec(container(), 0..30),
    )
        .prop_map(|(base, labels, inject, filler, containers)| {
            let mut review = fixture(base);
            let pod = &mut review["request"]["object"];
            for (k, v) in labels {
                pod["metadata"]["labels"][k] = json!(v);
            }
            if !pod["metadata"]["annotations"].is_object() {
                pod["metadata"]["annotations"] = json!({});
            }
            pod["metadata"]["annotations"]["tessera.dev/inject"] = json!(inject.join(","));
            pod["metadata"]["annotations"]["example.dev/filler"] = json!("f".repeat(filler));
            if let Some(list) = pod["spec"]["containers"].as_array_mut() {
                list.extend(containers);
            }
            serde_json::to_vec(&review).unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn a_review_costs_a_bounded_multiple_of_its_body(body in review_body()) {
        let state = state();
        let (answer, peak, cpu) = cost_of(|| review(&state, &body));
        prop_assert!(answer.is_ok(), "{:?}", answer.err());
        let heap_bound = 8 * body.len() + (12 << 20);
        prop_assert!(peak <= heap_bound, "{} byte body peaked at {peak} bytes", body.len());
        let cpu_bound = Duration::from_millis(20) + Duration::from_micros(2) * u32::try_from(body.len()).unwrap();
        prop_assert!(cpu <= cpu_bound, "{} byte body took {cpu:?} of CPU", body.len());
    }
}
