//! The install overlays as an operator uses them: every overlay in install/ resolves without the
//! network and renders objects that all carry the label `tessera uninstall` finds them by; the
//! admission objects carry it in their own files; the webhook answers before the apiserver's
//! timeout; outside opted-in namespaces only Tessera's own labels send a pod to the webhook.
//! (`cli/tests/quick_start.rs` runs the README's quick start on a copy outside the repository.)
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use tessera_tests::kustomize;

const PART_OF: (&str, &str) = ("app.kubernetes.io/part-of", "tessera");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn is_kustomization(dir: &Path) -> bool {
    let text = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    text.lines().any(|l| l.trim() == "kind: Kustomization")
}

#[test]
fn every_install_overlay_resolves_offline_and_renders_labelled_objects() {
    let overlays: Vec<PathBuf> = kustomize::overlays(&root().join("install"))
        .into_iter()
        .chain(kustomize::overlays(&root().join("install/components")))
        .chain([root().join("manifests")])
        .collect();
    assert!(overlays.len() >= 5, "{overlays:?}");
    for dir in &overlays {
        let missing = kustomize::unresolved(dir);
        assert!(missing.is_empty(), "{}: {missing:?}", dir.display());
        // A Component renders only inside a Kustomization.
        if !is_kustomization(dir) {
            continue;
        }
        let Some(objects) = kustomize::render(dir) else {
            continue;
        };
        assert!(
            objects.len() > 30,
            "{}: {} objects",
            dir.display(),
            objects.len()
        );
        for o in &objects {
            assert_eq!(
                o["metadata"]["labels"][PART_OF.0],
                PART_OF.1,
                "{}: {} {} lacks the part-of label",
                dir.display(),
                o["kind"],
                o["metadata"]["name"]
            );
        }
    }
}

#[test]
fn a_plain_copy_of_the_example_outside_the_repository_does_not_resolve() {
    // Why the quick start uses `tessera overlay`: the example names ../../manifests.
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("my-cluster");
    std::fs::create_dir(&copy).unwrap();
    std::fs::copy(
        root().join("install/example/kustomization.yaml"),
        copy.join("kustomization.yaml"),
    )
    .unwrap();
    let missing = kustomize::unresolved(&copy);
    assert!(
        missing.iter().any(|m| m.ends_with("../../manifests")),
        "{missing:?}"
    );
}

#[test]
fn the_admission_objects_carry_the_label_uninstall_finds_them_by() {
    for file in [
        "manifests/webhook/mutatingwebhookconfiguration.yaml",
        "manifests/guard/validating-admission-policy.yaml",
    ] {
        for doc in documents(file) {
            assert_eq!(
                doc["metadata"]["labels"][PART_OF.0], PART_OF.1,
                "{file}: {}",
                doc["metadata"]["name"]
            );
        }
    }
    for file in std::fs::read_dir(root().join("manifests/profiles")).unwrap() {
        let path = file.unwrap().path();
        let name = format!(
            "manifests/profiles/{}",
            path.file_name().unwrap().to_string_lossy()
        );
        for doc in documents(&name) {
            assert_eq!(doc["metadata"]["labels"][PART_OF.0], PART_OF.1, "{name}");
        }
    }
}

#[test]
fn the_webhook_answers_before_the_apiserver_gives_up() {
    let deployment = &documents("manifests/webhook/deployment.yaml")[0];
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap();
    let deadline_ms: u64 = args
        .iter()
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix("--request-timeout-ms="))
        .expect("the Deployment sets --request-timeout-ms")
        .parse()
        .unwrap();
    let mwc = &documents("manifests/webhook/mutatingwebhookconfiguration.yaml")[0];
    for hook in mwc["webhooks"].as_array().unwrap() {
        let timeout_s = hook["timeoutSeconds"].as_u64().unwrap();
        assert!(
            deadline_ms < timeout_s * 1000,
            "{}: the webhook's deadline {deadline_ms} ms is not below timeoutSeconds {timeout_s}",
            hook["name"]
        );
    }
}

/// Label keys a CEL expression tests with `'key' in object.metadata.labels`.
fn label_keys(expression: &str) -> Vec<&str> {
    expression
        .match_indices("' in object.metadata.labels")
        .filter_map(|(at, _)| {
            let before = &expression[..at];
            before.rfind('\'').map(|open| &before[open + 1..])
        })
        .collect()
}

#[test]
fn outside_opted_in_namespaces_only_tessera_labels_send_pods_to_the_webhook() {
    let mwc = &documents("manifests/webhook/mutatingwebhookconfiguration.yaml")[0];
    let pods = mwc["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "pods.tessera.dev")
        .unwrap();
    let excluded = &pods["namespaceSelector"]["matchExpressions"][0];
    assert_eq!(excluded["key"], "tessera.dev/injection");
    assert_eq!(excluded["operator"], "NotIn");
    for condition in pods["matchConditions"].as_array().unwrap() {
        let expression = condition["expression"].as_str().unwrap();
        let keys = label_keys(expression);
        assert!(!keys.is_empty(), "{expression}");
        for key in keys {
            assert!(
                key.starts_with("tessera.dev/"),
                "pods are sent by label {key}"
            );
        }
        assert!(
            !expression.contains("labels['"),
            "a label's value decides: {expression}"
        );
    }
}
