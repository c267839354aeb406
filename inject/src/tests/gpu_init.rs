//! GPU shares in init containers and native sidecars are translated and routed like the app
//! containers'; a share in an ephemeral container is refused.

use serde_json::json;

use super::*;

/// A profile that translates gpushare names, routes GPU pods and injects a native sidecar, so
/// the injected init container is inserted in front of the pod's own.
const GPU_AND_MESH: &str = r#"
gpu:
  selector: {}
  gpu: {gpushare: true}
  sidecars: {native: true, containers: [{name: proxy, image: "proxy:1"}]}
"#;

#[test]
fn shares_in_init_containers_and_native_sidecars_are_translated_and_routed() {
    let ps = profiles(GPU_AND_MESH);
    let mut pod = bare_pod();
    pod["spec"]["initContainers"] = json!([
        {"name": "warm", "image": "w:1",
         "resources": {"limits": {"aliyun.com/gpu-mem": "2"}}},
        {"name": "agent", "image": "a:1", "restartPolicy": "Always",
         "resources": {"limits": {"aliyun.com/gpu-mem": "1"}}}
    ]);
    let (_, typed, doc) = run(&ps, &pod, &ctx());
    let init = &doc["spec"]["initContainers"];
    assert_eq!(init[0]["name"], "proxy", "the injected sidecar goes first");
    assert_eq!(init[1]["name"], "warm");
    assert_eq!(
        init[1]["resources"]["limits"],
        json!({"tessera.dev/gpu": "1", "tessera.dev/gpu-mem": "2048"})
    );
    assert_eq!(init[2]["name"], "agent");
    assert_eq!(
        init[2]["resources"]["limits"],
        json!({"tessera.dev/gpu": "1", "tessera.dev/gpu-mem": "1024"})
    );
    assert_eq!(doc["spec"]["schedulerName"], "tessera-scheduler");
    // What the extender reads from the patched pod: the sidecar beside the app, warm alone.
    let ctx = tessera_kernel::request::RequestContext::default();
    let request = tessera_kernel::request::pod_request(&typed, ctx).unwrap();
    assert_eq!(request.containers[0].container, "agent");
    assert_eq!(request.init[0].container.container, "warm");
}

#[test]
fn a_pod_whose_only_share_is_in_an_init_container_gets_the_tessera_scheduler() {
    let ps = profiles("gpu:\n  selector: {}\n  gpu: {}\n");
    let mut pod = bare_pod();
    pod["spec"]["initContainers"] = json!([{"name": "warm", "image": "w:1",
        "resources": {"limits": {"tessera.dev/gpu-mem": "2048"}}}]);
    let (_, _, doc) = run(&ps, &pod, &ctx());
    assert_eq!(doc["spec"]["schedulerName"], "tessera-scheduler");
}

#[test]
fn an_invalid_share_in_an_init_container_is_a_render_error_naming_it() {
    let ps = profiles("gpu:\n  selector: {}\n  gpu: {hami: true}\n");
    let mut pod = bare_pod();
    pod["spec"]["initContainers"] = json!([{"name": "warm", "image": "w:1",
        "resources": {"limits": {"nvidia.com/gpucores": "300"}}}]);
    let text = pod.to_string();
    let err = mutate(&ps, &serde_json::from_str(&text).unwrap(), &ctx()).unwrap_err();
    assert!(err.to_string().contains("\"warm\""), "{err}");
}

#[test]
fn a_share_in_an_ephemeral_container_is_refused() {
    let ps = profiles("gpu:\n  selector: {}\n  gpu: {}\n");
    let mut pod = bare_pod();
    pod["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "d:1",
        "resources": {"limits": {"tessera.dev/gpu-mem": "1024"}}}]);
    let text = pod.to_string();
    let err = mutate(&ps, &serde_json::from_str(&text).unwrap(), &ctx()).unwrap_err();
    assert!(
        matches!(&err.problem, RenderProblem::EphemeralGpu { container, .. } if container == "debug"),
        "{err}"
    );
    assert!(
        err.to_string().contains("ephemeral containers cannot hold"),
        "{err}"
    );
}
