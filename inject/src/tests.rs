//! Injection decisions on small pods: each case applies the patch to the pod as given, reads
//! the result as a k8s-openapi `Pod`, and sends it through again expecting no patch.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::*;

mod bounds;
mod gpu_init;
mod group;
mod membership;

fn profiles(yaml: &str) -> Vec<Profile> {
    let specs: BTreeMap<String, InjectionProfileSpec> = serde_yaml_ng::from_str(yaml).unwrap();
    let (ok, bad) = compile_all(specs);
    assert!(bad.is_empty(), "{bad:?}");
    ok
}

fn ctx() -> Context<'static> {
    Context {
        namespace: "default",
        cluster_domain: "cluster.local",
        ..Context::default()
    }
}

/// Runs `mutate`, applies the patch, and checks that a second pass adds nothing.
fn run(profiles: &[Profile], pod: &Value, ctx: &Context<'_>) -> (Outcome, Pod, Value) {
    let text = pod.to_string();
    let view: PodView<'_> = serde_json::from_str(&text).unwrap();
    let out = mutate(profiles, &view, ctx).unwrap();
    let mut doc = pod.clone();
    let patch: json_patch::Patch =
        serde_json::from_value(serde_json::to_value(&out.ops).unwrap()).unwrap();
    json_patch::patch(&mut doc, &patch).unwrap();
    let typed: Pod = serde_json::from_value(doc.clone()).unwrap();
    let again_text = doc.to_string();
    let again: PodView<'_> = serde_json::from_str(&again_text).unwrap();
    let second = mutate(profiles, &again, ctx).unwrap();
    assert!(
        second.ops.is_empty(),
        "second pass patched: {:?}",
        second.ops
    );
    (out, typed, doc)
}

fn bare_pod() -> Value {
    json!({"metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "app", "image": "app:1"}]}})
}

fn zk_pod(ordinal: u32) -> Value {
    json!({"metadata": {"name": format!("zk-{ordinal}"), "namespace": "default",
             "labels": {"app": "zk", "apps.kubernetes.io/pod-index": ordinal.to_string()},
             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "zk", "uid": "u", "controller": true}]},
           "spec": {"subdomain": "zk-hs", "serviceAccountName": "zk",
             "containers": [{"name": "zookeeper", "image": "zk:3.9", "env": [{"name": "A", "value": "1"}]}],
             "volumes": [{"name": "data", "emptyDir": {}}]}})
}

const MESH: &str = r#"
mesh:
  selector: {matchLabels: {app: web}}
  sidecars:
    containers: [{name: proxy, image: "proxy:1"}]
    volumes: [{name: proxy-config, emptyDir: {}}]
  spiffe: {trustDomain: example.org, audience: mesh}
"#;

const ZK: &str = r#"
zookeeper:
  selector: {matchLabels: {app: zk}}
  identity:
    replicas: 3
    peers: {entry: "server.{{ordinal+1}}={{host}}:2888:3888", separator: "\n"}
    env: {ZOO_MY_ID: "{{ordinal+1}}"}
    files: {mountPath: /etc/zk, items: {myid: "{{ordinal+1}}", servers: "{{peers}}"}}
"#;

#[test]
fn unselected_pod_gets_no_patch() {
    let ps = profiles(MESH);
    let mut pod = bare_pod();
    pod["metadata"]["labels"]["app"] = json!("other");
    let (out, _, _) = run(&ps, &pod, &ctx());
    assert!(out.ops.is_empty() && out.applied.is_empty());
}

#[test]
fn sidecar_volume_spiffe_and_marker_are_added_where_the_pod_had_no_arrays() {
    let ps = profiles(MESH);
    let (out, pod, _) = run(&ps, &bare_pod(), &ctx());
    assert_eq!(out.applied, ["mesh"]);
    let spec = pod.spec.unwrap();
    let names: Vec<_> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["app", "proxy"]);
    for c in &spec.containers {
        let env = c.env.as_ref().unwrap();
        assert_eq!(env[0].name, "SPIFFE_ID");
        assert_eq!(
            env[0].value.as_deref(),
            Some("spiffe://example.org/ns/default/sa/default")
        );
        let m = c.volume_mounts.as_ref().unwrap();
        assert_eq!(m[0].mount_path, TOKEN_MOUNT_PATH);
    }
    let vols = spec.volumes.unwrap();
    let token = vols.iter().find(|v| v.name == TOKEN_VOLUME).unwrap();
    let sat = token.projected.as_ref().unwrap().sources.as_ref().unwrap()[0]
        .service_account_token
        .clone()
        .unwrap();
    assert_eq!(sat.audience.as_deref(), Some("mesh"));
    let marker = &pod.metadata.annotations.unwrap()["tessera.dev/injected"];
    assert_eq!(marker, &format!("mesh@{}", ps[0].hash));
}

#[test]
fn existing_container_and_volume_names_are_not_duplicated() {
    let ps = profiles(MESH);
    let mut pod = bare_pod();
    pod["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "proxy", "image": "mine:2"}));
    pod["spec"]["volumes"] = json!([{"name": "proxy-config", "configMap": {"name": "x"}}]);
    let (_, pod, _) = run(&ps, &pod, &ctx());
    let spec = pod.spec.unwrap();
    assert_eq!(spec.containers.len(), 2);
    assert_eq!(spec.containers[1].image.as_deref(), Some("mine:2"));
    let vols: Vec<_> = spec.volumes.unwrap().into_iter().map(|v| v.name).collect();
    assert_eq!(vols, ["proxy-config", TOKEN_VOLUME]);
}

#[test]
fn native_sidecars_go_first_in_init_containers_with_restart_always() {
    let ps = profiles(
        r#"
mesh:
  selector: {}
  sidecars: {native: true, containers: [{name: proxy, image: "proxy:1"}]}
"#,
    );
    let mut pod = bare_pod();
    pod["spec"]["initContainers"] = json!([{"name": "setup", "image": "s:1"}]);
    let (_, pod, _) = run(&ps, &pod, &ctx());
    let init = pod.spec.unwrap().init_containers.unwrap();
    assert_eq!(init[0].name, "proxy");
    assert_eq!(init[0].restart_policy.as_deref(), Some("Always"));
    assert_eq!(init[1].name, "setup");
}

#[test]
fn zookeeper_member_gets_myid_and_server_list() {
    let ps = profiles(ZK);
    let (_, pod, doc) = run(&ps, &zk_pod(1), &ctx());
    let ann = pod.metadata.annotations.unwrap();
    assert_eq!(ann["zookeeper.files.tessera.dev/myid"], "2");
    assert_eq!(
        ann["zookeeper.files.tessera.dev/servers"],
        "server.1=zk-0.zk-hs.default.svc.cluster.local:2888:3888\n\
         server.2=zk-1.zk-hs.default.svc.cluster.local:2888:3888\n\
         server.3=zk-2.zk-hs.default.svc.cluster.local:2888:3888"
    );
    let env = &doc["spec"]["containers"][0]["env"];
    assert_eq!(
        env,
        &json!([{"name": "A", "value": "1"}, {"name": "ZOO_MY_ID", "value": "2"}])
    );
    let vols = doc["spec"]["volumes"].as_array().unwrap();
    let files = vols
        .iter()
        .find(|v| v["name"] == "tessera-zookeeper-files")
        .unwrap();
    let peers = vols
        .iter()
        .find(|v| v["name"] == "tessera-zookeeper-peers")
        .unwrap();
    assert_eq!(
        peers["configMap"],
        json!({"name": "zk-peers", "optional": true})
    );
    let mounts = &doc["spec"]["containers"][0]["volumeMounts"];
    assert!(
        mounts
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/etc/tessera/zookeeper-peers")
    );
    assert_eq!(
        files["projected"]["sources"][0]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
        "metadata.annotations['zookeeper.files.tessera.dev/myid']"
    );
}

#[test]
fn ordinal_comes_from_the_pod_name_without_the_index_label_and_replicas_from_the_cache() {
    let ps = profiles(ZK);
    let mut pod = zk_pod(4);
    pod["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("apps.kubernetes.io/pod-index");
    let lookup = |sts: &str| (sts == "zk").then_some(5);
    let c = Context {
        replicas: Some(&lookup),
        ..ctx()
    };
    let (_, pod, _) = run(&ps, &pod, &c);
    let ann = pod.metadata.annotations.unwrap();
    assert_eq!(ann["zookeeper.files.tessera.dev/myid"], "5");
    assert_eq!(
        ann["zookeeper.files.tessera.dev/servers"].lines().count(),
        5
    );
}

#[test]
fn a_member_past_the_profile_replicas_lists_itself_among_the_peers() {
    // No StatefulSet cache (a --profiles webhook without a cluster): the profile's replicas
    // (3) are raised to cover the member, up to the maximum ensemble size.
    let ps = profiles(ZK);
    let (_, pod, _) = run(&ps, &zk_pod(4), &ctx());
    let ann = pod.metadata.annotations.unwrap();
    assert_eq!(ann["zookeeper.files.tessera.dev/myid"], "5");
    assert_eq!(
        ann["zookeeper.files.tessera.dev/servers"].lines().count(),
        5
    );
}

#[test]
fn render_failure_names_profile_and_field_and_gives_no_patch() {
    let ps = profiles(ZK);
    let mut pod = zk_pod(0);
    pod["spec"].as_object_mut().unwrap().remove("subdomain");
    let text = pod.to_string();
    let view: PodView<'_> = serde_json::from_str(&text).unwrap();
    let err = mutate(&ps, &view, &ctx()).unwrap_err();
    assert_eq!(err.profile, "zookeeper");
    assert!(
        err.field.starts_with("spec.identity.files.items[servers]"),
        "{err}"
    );
    assert_eq!(err.problem, RenderProblem::NoService);
    assert!(err.to_string().contains("spec.subdomain"), "{err}");
}

#[test]
fn identity_is_skipped_for_pods_outside_a_statefulset() {
    let ps = profiles(ZK);
    let mut pod = zk_pod(0);
    pod["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("ownerReferences");
    let (out, pod, _) = run(&ps, &pod, &ctx());
    assert_eq!(out.applied, ["zookeeper"]);
    assert_eq!(
        pod.metadata.annotations.unwrap().len(),
        1,
        "only the marker"
    );
}

#[test]
fn kube_system_host_network_and_opted_out_namespaces_are_skipped() {
    let ps = profiles(MESH);
    let mut pod = bare_pod();
    pod["metadata"]["namespace"] = json!("kube-system");
    assert!(run(&ps, &pod, &ctx()).0.ops.is_empty());
    let mut pod = bare_pod();
    pod["spec"]["hostNetwork"] = json!(true);
    assert!(run(&ps, &pod, &ctx()).0.ops.is_empty());
    let labels = BTreeMap::from([("tessera.dev/injection".to_string(), "disabled".to_string())]);
    let c = Context {
        namespace_labels: Some(&labels),
        ..ctx()
    };
    assert!(run(&ps, &bare_pod(), &c).0.ops.is_empty());
}

#[test]
fn many_unknown_names_give_a_few_warnings_each_name_once() {
    let ps = profiles("named:\n  sidecars: {containers: [{name: s, image: s}]}\n");
    let mut pod = bare_pod();
    let names: Vec<String> = (0..131_072).map(|i| format!("p{}", i % 100_000)).collect();
    pod["metadata"]["annotations"] =
        json!({"tessera.dev/inject": format!("named,p0,{}", names.join(","))});
    let (out, _, _) = run(&ps, &pod, &ctx());
    assert_eq!(out.applied, ["named"]);
    assert_eq!(
        out.warnings.len(),
        select::MAX_NAME_WARNINGS + 1,
        "{:?}",
        &out.warnings[..3]
    );
    assert_eq!(
        out.warnings[0],
        "tessera.dev/inject: no InjectionProfile named \"p0\""
    );
    assert_eq!(
        out.warnings[1],
        "tessera.dev/inject: no InjectionProfile named \"p1\""
    );
    assert_eq!(
        out.warnings.last().unwrap(),
        &format!(
            "tessera.dev/inject: and {} more names with no InjectionProfile",
            100_000 - select::MAX_NAME_WARNINGS
        )
    );
}

#[test]
fn opt_in_annotation_selects_a_profile_without_selector_and_warns_on_unknown_names() {
    let ps = profiles("named:\n  sidecars: {containers: [{name: s, image: s}]}\n");
    let mut pod = bare_pod();
    assert!(run(&ps, &pod, &ctx()).0.ops.is_empty());
    pod["metadata"]["annotations"] = json!({"tessera.dev/inject": "named, missing"});
    let (out, pod, _) = run(&ps, &pod, &ctx());
    assert_eq!(out.applied, ["named"]);
    assert_eq!(
        out.warnings,
        ["tessera.dev/inject: no InjectionProfile named \"missing\""]
    );
    assert_eq!(pod.spec.unwrap().containers.len(), 2);
}

#[test]
fn opt_in_label_names_one_profile_and_true_only_routes_the_pod() {
    let ps = profiles("named:\n  sidecars: {containers: [{name: s, image: s}]}\n");
    let mut pod = bare_pod();
    pod["metadata"]["labels"] = json!({"tessera.dev/inject": "true"});
    assert!(run(&ps, &pod, &ctx()).0.ops.is_empty());
    pod["metadata"]["labels"] = json!({"tessera.dev/inject": "named"});
    let (out, pod, _) = run(&ps, &pod, &ctx());
    assert_eq!(out.applied, ["named"]);
    assert_eq!(pod.spec.unwrap().containers.len(), 2);
}

#[test]
fn gpushare_request_is_translated_and_the_tessera_scheduler_set() {
    let ps = profiles("gpu:\n  selector: {}\n  gpu: {gpushare: true}\n");
    let mut pod = bare_pod();
    pod["spec"]["schedulerName"] = json!("default-scheduler");
    pod["spec"]["containers"][0]["resources"] = json!({"limits": {"aliyun.com/gpu-mem": "4", "cpu": "1"}, "requests": {"aliyun.com/gpu-mem": "4"}});
    let (_, _, doc) = run(&ps, &pod, &ctx());
    assert_eq!(
        doc["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "1", "tessera.dev/gpu": "1", "tessera.dev/gpu-mem": "4096"},
               "requests": {"tessera.dev/gpu": "1", "tessera.dev/gpu-mem": "4096"}})
    );
    assert_eq!(doc["spec"]["schedulerName"], "tessera-scheduler");
}

#[test]
fn hami_names_are_left_alone_without_the_opt_in() {
    let ps = profiles("gpu:\n  selector: {}\n  gpu: {gpushare: true}\n");
    let mut pod = bare_pod();
    pod["spec"]["containers"][0]["resources"] = json!({"limits": {"nvidia.com/gpumem": "4000"}});
    let (_, _, doc) = run(&ps, &pod, &ctx());
    assert_eq!(
        doc["spec"]["containers"][0]["resources"]["limits"],
        json!({"nvidia.com/gpumem": "4000"})
    );
    assert!(doc["spec"].get("schedulerName").is_none());
}

#[test]
fn invalid_gpu_request_is_a_render_error() {
    let ps = profiles("gpu:\n  selector: {}\n  gpu: {hami: true}\n");
    let mut pod = bare_pod();
    pod["spec"]["containers"][0]["resources"] = json!({"limits": {"nvidia.com/gpucores": "300"}});
    let text = pod.to_string();
    let err = mutate(&ps, &serde_json::from_str(&text).unwrap(), &ctx()).unwrap_err();
    assert_eq!(
        (err.profile.as_str(), err.field.as_str()),
        ("gpu", "spec.gpu")
    );
    assert!(err.to_string().contains("nvidia.com/gpucores"), "{err}");
}

#[test]
fn a_new_profile_is_applied_beside_the_marker_of_an_earlier_one() {
    let mut ps = profiles(MESH);
    let (_, _, doc) = run(&ps, &bare_pod(), &ctx());
    ps.extend(profiles(
        "extra:\n  selector: {}\n  sidecars: {containers: [{name: x, image: x}]}\n",
    ));
    ps.sort_by(|a, b| a.name.cmp(&b.name));
    let (out, pod, _) = run(&ps, &doc, &ctx());
    assert_eq!(
        (out.applied.clone(), out.already.clone()),
        (vec!["extra".to_string()], vec!["mesh".to_string()])
    );
    let marker = &pod.metadata.annotations.unwrap()["tessera.dev/injected"];
    assert_eq!(marker, &format!("extra@{},mesh@{}", ps[0].hash, ps[1].hash));
}

#[test]
fn profile_errors_name_profile_and_field() {
    let cases = [
        (
            "t:\n  identity: {env: {X: '{{podname}}'}}\n",
            "spec.identity.env[X]",
        ),
        (
            "t:\n  identity: {env: {X: '{{peers}}'}}\n",
            "spec.identity.env[X]",
        ),
        (
            "t:\n  sidecars: {containers: [{name: a, image: i}, {name: a, image: i}]}\n",
            "spec.sidecars.containers[1].name",
        ),
        (
            "t:\n  sidecars: {containers: [{name: a}]}\n",
            "spec.sidecars.containers[a].image",
        ),
        (
            "t:\n  identity: {files: {mountPath: rel, items: {}}}\n",
            "spec.identity.files.mountPath",
        ),
        (
            "t:\n  identity: {files: {mountPath: /x, items: {'a/b': x}}}\n",
            "spec.identity.files.items[a/b]",
        ),
        (
            "t:\n  spiffe: {trustDomain: d, audience: a, expirationSeconds: 10}\n",
            "spec.spiffe.expirationSeconds",
        ),
        (
            "t:\n  selector: {matchExpressions: [{key: a, operator: Has}]}\n",
            "spec.selector",
        ),
        ("Bad_Name: {}\n", "metadata.name"),
    ];
    for (yaml, field) in cases {
        let specs: BTreeMap<String, InjectionProfileSpec> = serde_yaml_ng::from_str(yaml).unwrap();
        let (ok, bad) = compile_all(specs);
        assert!(ok.is_empty(), "{yaml}");
        assert_eq!(bad[0].field, field, "{yaml}: {}", bad[0]);
    }
}

#[test]
fn one_invalid_profile_does_not_stop_the_others() {
    let specs: BTreeMap<String, InjectionProfileSpec> =
        serde_yaml_ng::from_str("good: {}\nbad:\n  identity: {env: {X: '{{nope}}'}}\n").unwrap();
    let (ok, bad) = compile_all(specs);
    assert_eq!(
        ok.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["good"]
    );
    assert_eq!(bad[0].profile, "bad");
}

#[test]
fn annotation_keys_with_slash_and_tilde_are_escaped_in_paths() {
    let ps = profiles(MESH);
    let mut pod = bare_pod();
    pod["metadata"]["annotations"] = json!({"odd~key/x": "1"});
    let (out, _, doc) = run(&ps, &pod, &ctx());
    assert!(
        out.ops
            .iter()
            .any(|o| o.path == "/metadata/annotations/tessera.dev~1injected")
    );
    assert_eq!(doc["metadata"]["annotations"]["odd~key/x"], "1");
}

#[test]
fn namespace_only_identity_renders_for_any_pod_and_app_mounts_reach_app_containers() {
    let ps = profiles(
        r#"
agent:
  selector: {}
  sidecars:
    initContainers: [{name: copy-agent, image: "agent:1"}]
    volumes: [{name: agent, emptyDir: {}}]
    appVolumeMounts: [{name: agent, mountPath: /opt/agent}]
  identity: {env: {SERVICE_NS: "{{namespace}}.svc.{{clusterDomain}}"}}
"#,
    );
    let mut pod = bare_pod();
    pod["metadata"].as_object_mut().unwrap().remove("name");
    let (_, _, doc) = run(&ps, &pod, &ctx());
    let app = &doc["spec"]["containers"][0];
    assert_eq!(
        app["env"],
        json!([{"name": "SERVICE_NS", "value": "default.svc.cluster.local"}])
    );
    assert_eq!(
        app["volumeMounts"],
        json!([{"name": "agent", "mountPath": "/opt/agent"}])
    );
    assert_eq!(doc["spec"]["initContainers"][0]["name"], "copy-agent");
}

#[test]
fn peers_configmap_follows_the_replica_count() {
    let ps = profiles(ZK);
    let labels = BTreeMap::from([("app".to_string(), "zk".to_string())]);
    let p = peers::peer_profile(&ps, &labels, &BTreeMap::new()).unwrap();
    let data =
        peers::configmap_data(p, "zk", "default", Some("zk-hs"), 5, "cluster.local").unwrap();
    assert_eq!(data["replicas"], "5");
    assert_eq!(data["peers"].lines().count(), 5);
    assert!(data["peers"].ends_with("server.5=zk-4.zk-hs.default.svc.cluster.local:2888:3888"));
    assert_eq!(
        data["hosts"].lines().next(),
        Some("zk-0.zk-hs.default.svc.cluster.local")
    );
    let other = BTreeMap::from([("app".to_string(), "web".to_string())]);
    assert!(peers::peer_profile(&ps, &other, &BTreeMap::new()).is_none());
    let err = peers::configmap_data(p, "zk", "default", None, 3, "cluster.local").unwrap_err();
    assert_eq!(err.problem, RenderProblem::NoService);
}
