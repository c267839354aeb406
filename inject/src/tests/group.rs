//! Anti-affinity groups: the scheduler name and the group labels a profile with
//! `identity.antiAffinity` writes, read back by the extender's own `pod_group`.

use serde_json::json;

use super::*;
use tessera_kernel::request::{Group, pod_group};

const ZK_QUORUM: &str = r#"
zookeeper:
  selector: {matchLabels: {app: zk}}
  identity: {replicas: 3, antiAffinity: quorum}
"#;

fn labels_of(doc: &Value) -> &Value {
    &doc["metadata"]["labels"]
}

#[test]
fn quorum_member_gets_the_tessera_scheduler_and_the_group_the_extender_reads() {
    let ps = profiles(ZK_QUORUM);
    let mut pod = zk_pod(1);
    pod["spec"]["schedulerName"] = json!("default-scheduler");
    let (out, typed, doc) = run(&ps, &pod, &ctx());
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    assert_eq!(
        typed.spec.as_ref().unwrap().scheduler_name.as_deref(),
        Some("tessera-scheduler")
    );
    assert_eq!(labels_of(&doc)["tessera.dev/group"], "zk");
    assert_eq!(labels_of(&doc)["tessera.dev/quorum"], "true");
    assert_eq!(labels_of(&doc)["tessera.dev/group-size"], "3");
    assert_eq!(labels_of(&doc)["app"], "zk", "existing labels stay");
    assert_eq!(
        pod_group(&typed),
        Some(Group {
            key: "default/zk".into(),
            quorum: true,
            size: Some(3)
        })
    );
    // The labels map existed: one `add` per key, never the whole map over the pod's labels.
    assert!(out.ops.iter().all(|o| o.path != "/metadata/labels"));
    assert!(
        out.ops
            .iter()
            .any(|o| o.path == "/metadata/labels/tessera.dev~1quorum")
    );
}

#[test]
fn spread_writes_group_and_size_but_no_quorum_label() {
    let ps = profiles(&ZK_QUORUM.replace("quorum", "spread"));
    let (_, typed, doc) = run(&ps, &zk_pod(0), &ctx());
    assert!(labels_of(&doc).get("tessera.dev/quorum").is_none());
    assert_eq!(
        pod_group(&typed),
        Some(Group {
            key: "default/zk".into(),
            quorum: false,
            size: Some(3)
        })
    );
    assert_eq!(doc["spec"]["schedulerName"], "tessera-scheduler");
}

#[test]
fn a_pod_without_labels_or_scheduler_name_gets_both_added_whole() {
    let ps = profiles("zookeeper:\n  identity: {replicas: 5, antiAffinity: quorum}\n");
    let mut pod = zk_pod(2);
    let meta = pod["metadata"].as_object_mut().unwrap();
    meta.remove("labels");
    meta.insert(
        "annotations".into(),
        json!({"tessera.dev/inject": "zookeeper"}),
    );
    assert!(pod["spec"].get("schedulerName").is_none());
    let (out, typed, _) = run(&ps, &pod, &ctx());
    let labels = out
        .ops
        .iter()
        .find(|o| o.path == "/metadata/labels")
        .unwrap();
    assert_eq!(
        labels.value.as_ref().map(crate::PatchValue::to_value),
        Some(
            json!({"tessera.dev/group": "zk", "tessera.dev/group-size": "5",
                    "tessera.dev/quorum": "true"})
        )
    );
    assert_eq!(pod_group(&typed).unwrap().size, Some(5));
    assert_eq!(
        typed.spec.unwrap().scheduler_name.as_deref(),
        Some("tessera-scheduler")
    );
}

#[test]
fn replicas_from_the_webhook_cache_win_over_the_profile() {
    let ps = profiles(ZK_QUORUM);
    let lookup = |sts: &str| (sts == "zk").then_some(7);
    let c = Context {
        replicas: Some(&lookup),
        ..ctx()
    };
    let (_, _, doc) = run(&ps, &zk_pod(0), &c);
    assert_eq!(labels_of(&doc)["tessera.dev/group-size"], "7");
}

#[test]
fn labels_the_pod_already_carries_are_kept() {
    let ps = profiles(ZK_QUORUM);
    let mut pod = zk_pod(0);
    let labels = pod["metadata"]["labels"].as_object_mut().unwrap();
    labels.insert("tessera.dev/group".into(), json!("ensemble-a"));
    labels.insert("tessera.dev/group-size".into(), json!("5"));
    let (out, typed, _) = run(&ps, &pod, &ctx());
    let paths: Vec<&str> = out.ops.iter().map(|o| o.path.as_str()).collect();
    assert!(
        !paths.iter().any(|p| p.contains("group")),
        "own labels are not rewritten: {paths:?}"
    );
    assert_eq!(
        pod_group(&typed),
        Some(Group {
            key: "default/ensemble-a".into(),
            quorum: true,
            size: Some(5)
        })
    );
}

#[test]
fn a_pod_naming_another_scheduler_keeps_it_gets_no_labels_and_a_warning() {
    let ps = profiles(ZK_QUORUM);
    let mut pod = zk_pod(0);
    pod["spec"]["schedulerName"] = json!("volcano");
    let (out, typed, doc) = run(&ps, &pod, &ctx());
    assert_eq!(doc["spec"]["schedulerName"], "volcano");
    assert!(labels_of(&doc).get("tessera.dev/quorum").is_none());
    assert_eq!(pod_group(&typed).map(|g| g.quorum), Some(false));
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(
        out.warnings[0].contains("spec.identity.antiAffinity")
            && out.warnings[0].contains("\"volcano\""),
        "{}",
        out.warnings[0]
    );
    assert_eq!(out.applied, ["zookeeper"], "the marker is still written");
}

#[test]
fn a_pod_already_on_the_tessera_scheduler_gets_only_the_labels() {
    let ps = profiles(ZK_QUORUM);
    let mut pod = zk_pod(0);
    pod["spec"]["schedulerName"] = json!("tessera-scheduler");
    let (out, _, _) = run(&ps, &pod, &ctx());
    assert!(out.ops.iter().all(|o| o.path != "/spec/schedulerName"));
    assert!(out.warnings.is_empty());
}

#[test]
fn a_pod_outside_a_statefulset_without_a_group_label_is_left_alone_with_a_warning() {
    let ps = profiles(ZK_QUORUM);
    let mut pod = zk_pod(0);
    pod["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("ownerReferences");
    let (out, typed, doc) = run(&ps, &pod, &ctx());
    assert!(doc["spec"].get("schedulerName").is_none());
    assert_eq!(pod_group(&typed), None);
    assert!(
        out.warnings[0].contains("neither a StatefulSet member"),
        "{:?}",
        out.warnings
    );
}

#[test]
fn a_labelled_group_outside_a_statefulset_gets_the_scheduler_and_the_profile_size() {
    let ps = profiles(ZK_QUORUM);
    let mut pod = bare_pod();
    pod["metadata"]["labels"] = json!({"app": "zk", "tessera.dev/group": "edge"});
    let (_, typed, doc) = run(&ps, &pod, &ctx());
    assert_eq!(doc["spec"]["schedulerName"], "tessera-scheduler");
    assert_eq!(
        pod_group(&typed),
        Some(Group {
            key: "default/edge".into(),
            quorum: true,
            size: Some(3)
        })
    );
}

#[test]
fn a_quorum_of_unknown_size_is_refused_naming_the_field_and_nothing_is_patched() {
    let ps = profiles(
        "zookeeper:\n  selector: {matchLabels: {app: zk}}\n  identity: {antiAffinity: quorum}\n",
    );
    let text = zk_pod(0).to_string();
    let view: PodView<'_> = serde_json::from_str(&text).unwrap();
    let err = mutate(&ps, &view, &ctx()).unwrap_err();
    assert_eq!(
        (err.profile.as_str(), err.field.as_str()),
        ("zookeeper", "spec.identity.antiAffinity")
    );
    assert_eq!(err.problem, RenderProblem::NoReplicas);
    // Spread needs no size: the label is simply left out.
    let ps = profiles(
        "zookeeper:\n  selector: {matchLabels: {app: zk}}\n  identity: {antiAffinity: spread}\n",
    );
    let (_, typed, _) = run(&ps, &zk_pod(0), &ctx());
    assert_eq!(pod_group(&typed).unwrap().size, None);
}

#[test]
fn a_gpu_profile_with_a_quorum_sets_the_scheduler_once() {
    let ps = profiles(
        "trainer:\n  selector: {}\n  gpu: {schedulerName: gpu-scheduler}\n  identity: {replicas: 3, antiAffinity: quorum}\n",
    );
    let mut pod = zk_pod(0);
    pod["spec"]["containers"][0]["resources"] = json!({"limits": {"tessera.dev/gpu": "1"}});
    let (out, _, doc) = run(&ps, &pod, &ctx());
    let scheduler_ops = out
        .ops
        .iter()
        .filter(|o| o.path == "/spec/schedulerName")
        .count();
    assert_eq!(scheduler_ops, 1);
    assert_eq!(doc["spec"]["schedulerName"], "gpu-scheduler");
    assert_eq!(labels_of(&doc)["tessera.dev/quorum"], "true");
}

#[test]
fn anti_affinity_none_is_the_default_and_leaves_the_profile_hash_as_it_was() {
    let plain =
        profiles("zookeeper:\n  selector: {matchLabels: {app: zk}}\n  identity: {replicas: 3}\n");
    let explicit = profiles(
        "zookeeper:\n  selector: {matchLabels: {app: zk}}\n  identity: {replicas: 3, antiAffinity: none}\n",
    );
    assert_eq!(plain[0].hash, explicit[0].hash);
    let (out, _, _) = run(&plain, &zk_pod(0), &ctx());
    assert!(
        out.ops
            .iter()
            .all(|o| !o.path.starts_with("/metadata/labels") && o.path != "/spec/schedulerName")
    );
}

#[test]
fn an_unknown_anti_affinity_mode_does_not_read_as_a_profile() {
    let err = serde_yaml_ng::from_str::<InjectionProfileSpec>("identity: {antiAffinity: sideways}")
        .unwrap_err()
        .to_string();
    assert!(err.contains("sideways") && err.contains("quorum"), "{err}");
}

#[test]
fn a_member_past_the_cached_replicas_is_denied_naming_the_label_and_the_limit() {
    // The StatefulSet's replicas bound the ordinal when known. A cache that lags a scale-out
    // denies the new member once; the StatefulSet controller retries its creation.
    let ps = profiles(ZK_QUORUM);
    let lookup = |sts: &str| (sts == "zk").then_some(3);
    let c = Context {
        replicas: Some(&lookup),
        ..ctx()
    };
    let text = zk_pod(4).to_string();
    let view: PodView<'_> = serde_json::from_str(&text).unwrap();
    let err = mutate(&ps, &view, &c).unwrap_err().to_string();
    assert!(
        err.contains("ordinal 4")
            && err.contains("apps.kubernetes.io/pod-index")
            && err.contains("replicas (3)"),
        "{err}"
    );
    let (_, _, doc) = run(&ps, &zk_pod(2), &c);
    assert_eq!(labels_of(&doc)["tessera.dev/group-size"], "3");
}
