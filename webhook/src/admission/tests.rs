//! What an operator running at `--log-level=info` (the Deployment's level) sees per request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::registry::Registry;
use serde_json::Value;

use super::review;
use crate::config::AdmissionConfig;
use crate::metrics::{Metrics, Outcome};
use crate::profiles;
use crate::state::WebhookState;

/// Log lines written through the subscriber, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
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
    let text = std::fs::read_to_string(root().join("manifests/profiles/zookeeper.yaml")).unwrap();
    state.set_profiles(profiles::parse(&text).profiles, 0);
    state
}

fn fixture(name: &str) -> Value {
    let path = root().join("tests/fixtures/admission").join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Reviews `body` with an info-level text subscriber installed; returns the outcome and the log.
fn review_logged(state: &WebhookState, body: &Value) -> (Outcome, String) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let bytes = serde_json::to_vec(body).unwrap();
    let outcome =
        tracing::subscriber::with_default(subscriber, || review(state, &bytes).unwrap().outcome);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    (outcome, log)
}

#[test]
fn at_info_only_denials_are_logged_and_they_name_the_pod_and_profile() {
    let state = state();
    let patched = fixture("pod-statefulset-zk-0.request.json");
    let (outcome, log) = review_logged(&state, &patched);
    assert_eq!(outcome, Outcome::Patched);
    assert_eq!(log, "", "an injected pod writes no info line");
    let (outcome, log) = review_logged(&state, &fixture("pod-bare.request.json"));
    assert_eq!(outcome, Outcome::Skipped);
    assert_eq!(log, "", "an unselected pod writes no info line");

    let mut broken = patched;
    broken["request"]["object"]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("subdomain");
    let (outcome, log) = review_logged(&state, &broken);
    assert_eq!(outcome, Outcome::Denied);
    assert_eq!(log.lines().count(), 1, "{log}");
    let uid = broken["request"]["uid"].as_str().unwrap();
    let namespace = broken["request"]["namespace"].as_str().unwrap();
    for want in [
        " INFO ",
        "denied",
        &format!("uid={uid}"),
        &format!("namespace=\"{namespace}\""),
        "name=\"zk-0\"",
        "profile=zookeeper",
        "spec.subdomain",
    ] {
        assert!(log.contains(want), "{want:?} missing from {log:?}");
    }
}
