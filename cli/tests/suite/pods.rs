//! The objects the suite submits: plain pod specs that know nothing of Tessera beyond a label or
//! a foreign GPU request (the webhook adds the rest), a ZooKeeper StatefulSet, and trace pods.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use serde_json::{Value, json};
use tessera_core::keys;
use tessera_sim::trace::TracePod;

/// Label on the suite's namespace and nodes; the webhook registration and the pods select it.
pub const SUITE_LABEL: &str = "tessera.dev/e2e-suite";

/// Where a pod may go.
pub enum Place<'a> {
    /// Any of the suite's fake GPU nodes.
    SuiteNodes(&'a str),
    /// Exactly this node (by name: the fake nodes carry no hostname label).
    Node(&'a str),
}

/// The part of a pod spec that places it: a node selector or affinity, and tolerations for the
/// fake nodes, which never turn Ready.
fn placement(place: &Place<'_>) -> Value {
    let tolerations = json!([
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists"},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists"}
    ]);
    match place {
        Place::SuiteNodes(suite) => json!({
            "nodeSelector": {SUITE_LABEL: suite},
            "tolerations": tolerations,
        }),
        Place::Node(node) => json!({
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [
                    {"key": "metadata.name", "operator": "In", "values": [node]}
                ]}]
            }}},
            "tolerations": tolerations,
        }),
    }
}

/// A pod of one container running the node's test image, with no scheduler name of its own.
pub fn pod(
    name: &str,
    labels: &[(&str, &str)],
    limits: &[(&str, &str)],
    requests: &[(&str, &str)],
    place: &Place<'_>,
) -> Pod {
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    let limits: BTreeMap<&str, &str> = limits.iter().copied().collect();
    let requests: BTreeMap<&str, &str> = requests.iter().copied().collect();
    let mut spec = placement(place);
    spec["restartPolicy"] = json!("Never");
    spec["terminationGracePeriodSeconds"] = json!(1);
    spec["containers"] = json!([{
        "name": "main",
        "image": "local/app:1",
        "imagePullPolicy": "Never",
        "resources": {"limits": limits, "requests": requests}
    }]);
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }))
    .expect("a valid pod")
}

/// A trace pod as a user would submit it to a GPU-sharing cluster: Tessera's resource names,
/// the trace's CPU and host memory, and the gpu-sharing opt-in label.
pub fn trace_pod(t: &TracePod, suite: &str) -> Pod {
    let name = t.name.replace('_', "-");
    let cpu = format!("{}m", t.cpu_milli);
    let mem = format!("{}Mi", t.memory_mib);
    let requests = [("cpu", cpu.as_str()), ("memory", mem.as_str())];
    let (gpus, core) = (t.num_gpu.to_string(), (t.gpu_milli / 10).to_string());
    let limits: Vec<(&str, &str)> = if t.num_gpu == 0 {
        Vec::new()
    } else {
        vec![
            (keys::RESOURCE_GPU, gpus.as_str()),
            (keys::RESOURCE_GPU_CORE, core.as_str()),
        ]
    };
    pod(
        &name,
        &[("tessera.dev/gpu-sharing", "enabled"), ("trace", "openb")],
        &limits,
        &requests,
        &Place::SuiteNodes(suite),
    )
}

/// The headless Service a ZooKeeper ensemble's host names live under.
pub fn headless_service(name: &str, app: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"clusterIP": "None", "selector": {"app": app},
                 "ports": [{"name": "client", "port": 2181}]}
    }))
    .expect("a valid service")
}

/// A ZooKeeper StatefulSet as users write it: no identity, no scheduler name, nothing of
/// Tessera. Parallel pod management, since pods on the fake nodes never become Ready.
pub fn zookeeper(name: &str, service: &str, replicas: i32, suite: &str) -> StatefulSet {
    let mut spec = placement(&Place::SuiteNodes(suite));
    spec["containers"] = json!([{
        "name": "zookeeper",
        "image": "local/app:1",
        "imagePullPolicy": "Never",
    }]);
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": service,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": "zk"}},
            "template": {"metadata": {"labels": {"app": "zk"}}, "spec": spec},
        }
    }))
    .expect("a valid statefulset")
}
