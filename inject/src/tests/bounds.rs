//! Bounds on what one pod can ask of admission, and the marker decided by content.

use serde_json::json;

use super::*;

fn deny(ps: &[Profile], pod: &Value, ctx: &Context<'_>) -> String {
    let text = pod.to_string();
    let view: PodView<'_> = serde_json::from_str(&text).unwrap();
    mutate(ps, &view, ctx).unwrap_err().to_string()
}

#[test]
fn a_huge_ordinal_label_is_denied_naming_the_label_and_the_maximum_ensemble() {
    let ps = profiles(ZK);
    let err = deny(&ps, &zk_pod(u32::MAX), &ctx());
    assert!(
        err.contains("ordinal 4294967295")
            && err.contains("label apps.kubernetes.io/pod-index")
            && err.contains("maximum ensemble size (1000)"),
        "{err}"
    );
}

#[test]
fn a_huge_ordinal_in_the_pod_name_is_denied_naming_the_pod_name() {
    let ps = profiles(ZK);
    let mut pod = zk_pod(0);
    pod["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("apps.kubernetes.io/pod-index");
    pod["metadata"]["name"] = json!("zk-1000000");
    let err = deny(&ps, &pod, &ctx());
    assert!(
        err.contains("ordinal 1000000") && err.contains("from the pod name"),
        "{err}"
    );
    let (_, pod, _) = run(&ps, &zk_pod(crate::bounds::MAX_ENSEMBLE - 1), &ctx());
    let ann = pod.metadata.annotations.unwrap();
    assert_eq!(ann["zookeeper.files.tessera.dev/myid"], "1000");
}

#[test]
fn a_statefulset_with_more_replicas_than_the_maximum_ensemble_gets_no_peer_list() {
    let ps = profiles(ZK);
    let lookup = |_: &str| Some(50_000);
    let c = Context {
        replicas: Some(&lookup),
        ..ctx()
    };
    let err = deny(&ps, &zk_pod(0), &c);
    assert!(
        err.contains("50000 replicas") && err.contains("(1000)"),
        "{err}"
    );
}

fn many_containers(n: usize) -> Value {
    let mut pod = bare_pod();
    pod["spec"]["containers"] = (0..n)
        .map(|i| json!({"name": format!("c{i}"), "image": "app:1"}))
        .collect();
    pod
}

#[test]
fn a_pod_past_the_container_limit_is_denied_when_a_profile_applies_and_left_alone_otherwise() {
    let ps = profiles(MESH);
    let err = deny(&ps, &many_containers(30_000), &ctx());
    assert!(
        err.contains("30000 containers") && err.contains("at most 250"),
        "{err}"
    );
    let mut other = many_containers(30_000);
    other["metadata"]["labels"]["app"] = json!("other");
    let (out, _, _) = run(&ps, &other, &ctx());
    assert!(out.ops.is_empty());
}

#[test]
fn env_copied_into_every_container_past_the_budget_is_denied() {
    let big = "x".repeat(8 << 10);
    let ps = profiles(&format!(
        "mesh:\n  selector: {{matchLabels: {{app: web}}}}\n  identity: {{env: {{BIG: {big}}}}}\n"
    ));
    let err = deny(&ps, &many_containers(200), &ctx());
    assert!(err.contains("the limit is 1048576"), "{err}");
    run(&ps, &many_containers(100), &ctx());
}

#[test]
fn a_rendered_peer_list_past_the_budget_is_denied() {
    let long = "y".repeat(400);
    let ps = profiles(&format!(
        "zookeeper:\n  selector: {{matchLabels: {{app: zk}}}}\n  identity:\n    replicas: 900\n    \
         peers: {{entry: \"{long}{{{{ordinal}}}}\"}}\n    env: {{PEERS: \"{{{{peers}}}}\"}}\n"
    ));
    let err = deny(&ps, &zk_pod(0), &ctx());
    assert!(
        err.contains("spec.identity.env") && err.contains("the limit is 262144"),
        "{err}"
    );
}

#[test]
fn a_forged_marker_does_not_switch_injection_off() {
    let ps = profiles(MESH);
    let mut pod = bare_pod();
    pod["metadata"]["annotations"] = json!({"tessera.dev/injected": "mesh@anything"});
    let (out, pod, _) = run(&ps, &pod, &ctx());
    assert_eq!(out.applied, ["mesh"]);
    let names: Vec<_> = pod
        .spec
        .unwrap()
        .containers
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(names, ["app", "proxy"]);
    let marker = &pod.metadata.annotations.unwrap()["tessera.dev/injected"];
    assert_eq!(
        marker,
        &format!("mesh@{}", ps[0].hash),
        "the forged entry is replaced"
    );
}

#[test]
fn a_marker_over_a_pod_that_holds_only_part_of_the_profile_gets_the_rest() {
    let ps = profiles(MESH);
    let mut pod = bare_pod();
    pod["metadata"]["annotations"] =
        json!({"tessera.dev/injected": format!("mesh@{}", ps[0].hash)});
    pod["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "proxy", "image": "mine:1"}));
    let (out, pod, _) = run(&ps, &pod, &ctx());
    assert_eq!(out.applied, ["mesh"]);
    let volumes = pod.spec.unwrap().volumes.unwrap();
    assert!(volumes.iter().any(|v| v.name == TOKEN_VOLUME));
}

#[test]
fn names_longer_than_kubernetes_allows_are_denied_before_anything_is_rendered() {
    let ps = profiles(ZK);
    let mut pod = zk_pod(1);
    pod["metadata"]["ownerReferences"][0]["name"] = json!("z".repeat(300_000));
    let err = deny(&ps, &pod, &ctx());
    assert!(
        err.contains("the owning StatefulSet's name is 300000 characters long")
            && err.contains("at most 253"),
        "{err}"
    );
    assert!(
        err.len() < 300,
        "the name is not echoed: {} bytes",
        err.len()
    );
    let mut pod = zk_pod(1);
    pod["spec"]["subdomain"] = json!("s".repeat(64));
    let err = deny(&ps, &pod, &ctx());
    assert!(
        err.contains("spec.subdomain is 64 characters long") && err.contains("at most 63"),
        "{err}"
    );
    // At the limits, the member is admitted.
    let mut pod = zk_pod(1);
    pod["metadata"]["ownerReferences"][0]["name"] = json!("z".repeat(253));
    pod["spec"]["subdomain"] = json!("s".repeat(63));
    let (out, _, _) = run(&ps, &pod, &ctx());
    assert!(!out.ops.is_empty());
}

#[test]
fn a_peer_list_stops_at_the_rendering_budget_instead_of_being_measured_after() {
    let ps = profiles(ZK);
    let lookup = |_: &str| Some(crate::bounds::MAX_ENSEMBLE);
    let c = Context {
        replicas: Some(&lookup),
        ..ctx()
    };
    // Legal names at their longest: each peer entry is about 370 bytes, the list about 370 KB.
    let mut pod = zk_pod(0);
    pod["metadata"]["ownerReferences"][0]["name"] = json!("z".repeat(253));
    pod["spec"]["subdomain"] = json!("s".repeat(63));
    let view_text = pod.to_string();
    let view: PodView<'_> = serde_json::from_str(&view_text).unwrap();
    let err = mutate(&ps, &view, &c).unwrap_err();
    let RenderProblem::RenderedTooLarge { bytes, limit } = err.problem else {
        panic!("{err}");
    };
    assert_eq!(limit, crate::bounds::MAX_RENDERED_BYTES);
    assert!(
        bytes > limit && bytes < limit + 1024,
        "stopped within one entry of the budget, not after the whole list: {bytes}"
    );
}
