//! Fuzzing on stable Rust: property tests over arbitrary JSON grafted into the captured
//! fixtures, so that most cases get past the first field and reach the decisions. Three
//! surfaces: AdmissionReview decoding and mutation (an allowed patch must apply to the pod
//! as sent), every extender verb over HTTP (never a 5xx, never a dropped connection), and the
//! annotation codecs (decode never panics; what decodes round-trips).
//!
//! `cargo test` runs `TESSERA_FUZZ_CASES` cases per surface (default 64, a few seconds); a
//! longer run: `TESSERA_FUZZ_CASES=20000 cargo test -p tessera-tests --release --test fuzz`.
//! A crash found becomes a named case in `regressions` below.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod webhook_support;

use std::sync::Arc;

use base64::Engine;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunConfig, TestRunner};
use serde_json::{Value, json};
use tessera_core::annotations;
use tessera_webhook::config::AdmissionConfig;
use tessera_webhook::metrics::Metrics;
use tessera_webhook::{WebhookState, admission};

fn cases() -> u32 {
    std::env::var("TESSERA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

fn runner() -> TestRunner {
    TestRunner::new(RunConfig {
        cases: cases(),
        failure_persistence: None,
        ..RunConfig::default()
    })
}

/// Strings that reach the interesting branches: ordinals, quantities, markers, templates.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("4294967295".to_string()),
        Just("18446744073709551616".to_string()),
        Just("-1".to_string()),
        Just("999999999999999999999m".to_string()),
        Just("zookeeper@anything".to_string()),
        Just("{{peers}}".to_string()),
        Just("zk-100000".to_string()),
        Just("Always".to_string()),
        "[a-z0-9./@{}~,-]{0,24}",
        any::<String>(),
    ]
}

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1e300f64..1e300).prop_map(|f| json!(f)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every JSON Pointer into `v` (objects and arrays), the root included.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let key = k.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{at}/{key}"), out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// `doc` with up to four grafts: a value replaced, or a key added to an object.
fn graft(doc: &Value, edits: &[(prop::sample::Index, String, Value)]) -> Value {
    let mut doc = doc.clone();
    for (index, key, value) in edits {
        let mut all = Vec::new();
        pointers(&doc, String::new(), &mut all);
        let at = index.get(&all).clone();
        match doc.pointer_mut(&at) {
            Some(Value::Object(m)) if !key.is_empty() => {
                m.insert(key.clone(), value.clone());
            }
            Some(slot) if !at.is_empty() => *slot = value.clone(),
            _ => {}
        }
    }
    doc
}

fn edits() -> impl Strategy<Value = Vec<(prop::sample::Index, String, Value)>> {
    prop::collection::vec((any::<prop::sample::Index>(), text(), json_value()), 0..4)
}

fn admission_fixtures() -> Vec<Value> {
    let dir = webhook_support::repo_root().join("tests/fixtures/admission");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".request.json"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

fn webhook_state() -> WebhookState {
    let mut registry = prometheus_client::registry::Registry::default();
    let admission = AdmissionConfig {
        cluster_domain: "cluster.local".into(),
        spiffe: None,
    };
    let state = WebhookState::new(
        admission,
        Metrics::register(&mut registry),
        std::time::Duration::from_secs(5),
    );
    let loaded = webhook_support::shipped_profiles();
    state.set_profiles(loaded.profiles, loaded.errors.len());
    state
}

/// One review through decoding and mutation: a refusal is a 4xx; an answer echoes the uid,
/// and its patch applies to the object as sent.
fn check_review(state: &WebhookState, review: &Value) -> Result<(), TestCaseError> {
    let body = serde_json::to_vec(review).unwrap();
    let answer = match admission::review(state, &body) {
        Ok(answer) => answer,
        Err(e) => {
            prop_assert!(e.status().is_client_error(), "{e}");
            return Ok(());
        }
    };
    let out: Value = serde_json::from_slice(&answer.body).unwrap();
    prop_assert_eq!(&out["response"]["uid"], &review["request"]["uid"]);
    if let Some(patch) = out["response"]["patch"].as_str() {
        let ops = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&ops).unwrap();
        let mut object = review["request"]["object"].clone();
        prop_assert!(
            json_patch::patch(&mut object, &patch).is_ok(),
            "patch does not apply: {}",
            String::from_utf8_lossy(&ops)
        );
    }
    Ok(())
}

#[test]
fn admission_reviews_decode_and_mutate_without_crashing() {
    let state = webhook_state();
    let fixtures = admission_fixtures();
    let strategy = (any::<prop::sample::Index>(), edits());
    runner()
        .run(&strategy, |(which, edits)| {
            let review = graft(which.get(&fixtures), &edits);
            check_review(&state, &review)
        })
        .unwrap();
}

fn extender_fixtures() -> Vec<(&'static str, Value)> {
    let read = |name: &str| -> Value {
        let path = webhook_support::repo_root()
            .join("tests/fixtures/extender")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let filter = read("filter.nodenames.request.json");
    let preempt = json!({"Pod": filter["Pod"].clone(),
        "NodeNameToVictims": {"node-a": {"Pods": [filter["Pod"].clone()], "NumPDBViolations": 0}},
        "NodeNameToMetaVictims": {"node-a": {"Pods": [{"UID": "u"}], "NumPDBViolations": 0}}});
    vec![
        ("filter", filter),
        ("filter", read("filter.nodes.request.json")),
        ("prioritize", read("prioritize.nodenames.request.json")),
        ("bind", read("bind.request.json")),
        ("preempt", preempt),
    ]
}

struct Binds;

impl tessera_extender::Binder for Binds {
    fn bind(&self, _: tessera_extender::BindTarget) -> tessera_extender::BindFuture<'_> {
        Box::pin(async { Ok(()) })
    }
}

#[test]
fn extender_args_for_every_verb_get_an_answer_and_never_a_5xx() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = tessera_extender::Config {
        reservation_timeout: std::time::Duration::from_secs(60),
        heartbeat_max_age: None,
        ..tessera_extender::Config::default()
    };
    let state = Arc::new(tessera_extender::ExtenderState::new(
        config,
        Arc::new(Binds),
    ));
    state.set_ready(true);
    let addr = rt.block_on(tessera_tests::http::serve(state));
    let client = reqwest::Client::new();
    let fixtures = extender_fixtures();
    let strategy = (any::<prop::sample::Index>(), edits());
    runner()
        .run(&strategy, |(which, edits)| {
            let (verb, body) = which.get(&fixtures);
            let body = graft(body, &edits);
            let status = rt.block_on(async {
                let resp = client
                    .post(format!("http://{addr}/{verb}"))
                    .json(&body)
                    .send()
                    .await
                    .expect("the extender answers");
                let status = resp.status();
                resp.bytes().await.expect("a whole answer");
                status
            });
            prop_assert!(!status.is_server_error(), "{verb}: {status} for {body}");
            Ok(())
        })
        .unwrap();
}

#[test]
fn annotation_codecs_never_panic_and_what_decodes_round_trips() {
    let inventory = json!({"version": 1, "gpus": [{"index": 0, "uuid": "GPU-0", "model": "A100",
        "memoryMiB": 40960, "healthy": true}]});
    let assignment = json!({"version": 1, "node": "n", "containers": []});
    let seeds = [inventory, assignment];
    let strategy = (any::<prop::sample::Index>(), edits(), any::<String>());
    runner()
        .run(&strategy, |(which, edits, raw)| {
            let text = graft(which.get(&seeds), &edits).to_string();
            for t in [text.as_str(), raw.as_str()] {
                if let Ok(inv) = annotations::decode_inventory(t) {
                    let again = annotations::decode_inventory(&annotations::encode_inventory(&inv));
                    prop_assert_eq!(again.ok(), Some(inv));
                }
                if let Ok(a) = annotations::decode_assignment(t) {
                    let again = annotations::decode_assignment(&annotations::encode_assignment(&a));
                    prop_assert_eq!(again.ok(), Some(a));
                }
            }
            Ok(())
        })
        .unwrap();
}

/// Inputs the fuzzer found, or the probes, kept as named cases.
mod regressions {
    use super::*;

    fn zk_with_label(value: &str) -> Value {
        let mut review = admission_fixtures()
            .into_iter()
            .find(|r| r["request"]["object"]["metadata"]["name"] == "zk-1")
            .unwrap();
        review["request"]["object"]["metadata"]["labels"]["apps.kubernetes.io/pod-index"] =
            json!(value);
        review
    }

    #[test]
    fn the_largest_ordinal_label_is_denied_not_rendered() {
        let state = webhook_state();
        let body = serde_json::to_vec(&zk_with_label("4294967295")).unwrap();
        let out: Value =
            serde_json::from_slice(&admission::review(&state, &body).unwrap().body).unwrap();
        assert_eq!(out["response"]["allowed"], false);
    }
}
