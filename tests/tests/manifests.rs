//! The deployment tree as CI can check it without a cluster: every document in manifests/ is a
//! Kubernetes object k8s-openapi can read (or one of the few kinds it does not model), every
//! workload is locked down and sized, the scheduler profile is the one DESIGN.md settles, and
//! `kubectl kustomize manifests/` renders when kubectl is installed.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Namespace, PodSpec, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::api::resource::v1::DeviceClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Deserialize;
use serde_yaml_ng::Value;

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

/// Every YAML document under manifests/, with its file.
fn documents() -> Vec<(PathBuf, Value)> {
    let mut files = Vec::new();
    yaml_files(&manifests(), &mut files);
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()));
            if !value.is_null() {
                docs.push((file.clone(), value));
            }
        }
    }
    docs
}

fn typed<T: serde::de::DeserializeOwned>(file: &Path, doc: &Value) -> T {
    serde_yaml_ng::from_value(doc.clone()).unwrap_or_else(|e| {
        panic!(
            "{}: {} does not read as k8s-openapi type: {e}",
            file.display(),
            doc["kind"].as_str().unwrap_or("?")
        )
    })
}

#[test]
fn every_document_is_a_kubernetes_object_of_a_known_kind() {
    let docs = documents();
    assert!(docs.len() > 20, "only {} documents", docs.len());
    for (file, doc) in &docs {
        let kind = doc["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no kind", file.display()));
        match kind {
            "Namespace" => drop(typed::<Namespace>(file, doc)),
            "ServiceAccount" => drop(typed::<ServiceAccount>(file, doc)),
            "ClusterRole" => drop(typed::<ClusterRole>(file, doc)),
            "ClusterRoleBinding" => drop(typed::<ClusterRoleBinding>(file, doc)),
            "Role" => drop(typed::<Role>(file, doc)),
            "RoleBinding" => drop(typed::<RoleBinding>(file, doc)),
            "Deployment" => drop(typed::<Deployment>(file, doc)),
            "DaemonSet" => drop(typed::<DaemonSet>(file, doc)),
            "Service" => drop(typed::<Service>(file, doc)),
            "PodDisruptionBudget" => drop(typed::<PodDisruptionBudget>(file, doc)),
            "MutatingWebhookConfiguration" => {
                drop(typed::<MutatingWebhookConfiguration>(file, doc))
            }
            "ValidatingAdmissionPolicy" => drop(typed::<ValidatingAdmissionPolicy>(file, doc)),
            "ValidatingAdmissionPolicyBinding" => {
                drop(typed::<ValidatingAdmissionPolicyBinding>(file, doc))
            }
            "CustomResourceDefinition" => drop(typed::<CustomResourceDefinition>(file, doc)),
            "DeviceClass" => drop(typed::<DeviceClass>(file, doc)),
            // Not Kubernetes API objects k8s-openapi models; read by their own tests.
            "Kustomization" | "KubeSchedulerConfiguration" | "InjectionProfile" => {}
            other => panic!("{}: unexpected kind {other}", file.display()),
        }
    }
}

/// (file, workload name, pod spec) of every Deployment and DaemonSet.
fn workloads() -> Vec<(PathBuf, String, PodSpec)> {
    let mut out = Vec::new();
    for (file, doc) in documents() {
        let (name, spec) = match doc["kind"].as_str() {
            Some("Deployment") => {
                let d: Deployment = typed(&file, &doc);
                (d.metadata.name, d.spec.and_then(|s| s.template.spec))
            }
            Some("DaemonSet") => {
                let d: DaemonSet = typed(&file, &doc);
                (d.metadata.name, d.spec.and_then(|s| s.template.spec))
            }
            _ => continue,
        };
        out.push((file, name.unwrap(), spec.unwrap()));
    }
    out
}

#[test]
fn every_workload_has_a_read_only_root_requests_limits_and_no_privileges() {
    let all = workloads();
    assert_eq!(
        all.len(),
        7,
        "webhook, extender, scheduler, device plugin, DRA plugin, MPS daemon, membership controller"
    );
    for (file, name, spec) in all {
        let pod_sc = spec.security_context.clone().unwrap_or_default();
        // The device and DRA plugins and the MPS daemon alone run as root: the kubelet's
        // socket directories and /var/run/cdi are root's, and setting a GPU's compute mode
        // needs root.
        let root = [
            "tessera-device-plugin",
            "tessera-dra-plugin",
            "tessera-mps-daemon",
        ];
        if !root.contains(&name.as_str()) {
            assert_eq!(
                pod_sc.run_as_non_root,
                Some(true),
                "{}: {name} may run as root",
                file.display()
            );
        }
        for c in &spec.containers {
            let sc = c.security_context.clone().unwrap_or_default();
            assert_eq!(
                sc.read_only_root_filesystem,
                Some(true),
                "{name}/{}",
                c.name
            );
            assert_eq!(
                sc.allow_privilege_escalation,
                Some(false),
                "{name}/{}",
                c.name
            );
            let caps = sc.capabilities.unwrap_or_default();
            assert_eq!(
                caps.drop,
                Some(vec!["ALL".to_string()]),
                "{name}/{}",
                c.name
            );
            // Only the MPS daemon adds one: NVML sets a compute mode only with CAP_SYS_ADMIN.
            let added = caps.add.unwrap_or_default();
            if name == "tessera-mps-daemon" {
                assert_eq!(added, ["SYS_ADMIN"], "{name}/{}", c.name);
            } else {
                assert!(added.is_empty(), "{name}/{} adds {added:?}", c.name);
            }
            let res = c.resources.clone().unwrap_or_default();
            for what in ["cpu", "memory"] {
                assert!(
                    res.requests.as_ref().is_some_and(|r| r.contains_key(what)),
                    "{name}/{}: no {what} request",
                    c.name
                );
                assert!(
                    res.limits.as_ref().is_some_and(|r| r.contains_key(what)),
                    "{name}/{}: no {what} limit",
                    c.name
                );
            }
        }
    }
}

#[test]
fn the_scheduler_profile_is_the_settled_design() {
    let text =
        std::fs::read_to_string(manifests().join("scheduler/scheduler-config.yaml")).unwrap();
    let c: Value = serde_yaml_ng::from_str(&text).unwrap();
    assert_eq!(c["kind"], "KubeSchedulerConfiguration");
    assert_eq!(c["percentageOfNodesToScore"], 100);
    assert_eq!(c["profiles"][0]["schedulerName"], "tessera-scheduler");
    let ext = &c["extenders"][0];
    for verb in ["filter", "prioritize", "bind", "preempt"] {
        assert_eq!(ext[format!("{verb}Verb").as_str()], verb);
    }
    assert_eq!(ext["nodeCacheCapable"], true);
    assert!(ext["httpTimeout"].is_string());
    assert!(
        ext.get("managedResources").is_none(),
        "managedResources would drop quorum pods"
    );
    let fit = c["profiles"][0]["pluginConfig"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "NodeResourcesFit")
        .unwrap();
    let ignored: Vec<&str> = fit["args"]["ignoredResources"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(ignored, ["tessera.dev/gpu-mem", "tessera.dev/gpu-core"]);
}

#[test]
fn the_webhook_is_scoped_fails_closed_and_answers_fast() {
    let (file, doc) = documents()
        .into_iter()
        .find(|(_, d)| d["kind"] == "MutatingWebhookConfiguration")
        .unwrap();
    let mwc: MutatingWebhookConfiguration = typed(&file, &doc);
    for w in mwc.webhooks.unwrap() {
        assert_eq!(w.failure_policy.as_deref(), Some("Fail"));
        assert!(w.timeout_seconds.is_some_and(|t| t <= 3));
        assert_eq!(w.reinvocation_policy.as_deref(), Some("IfNeeded"));
        assert!(w.namespace_selector.is_some() && w.object_selector.is_some());
    }
}

#[test]
fn kustomize_renders_the_tree() {
    let Ok(out) = std::process::Command::new("kubectl")
        .args(["kustomize"])
        .arg(manifests())
        .output()
    else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "skipping kustomize render: kubectl is not installed"
        );
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8_lossy(&out.stdout);
    for kind in [
        "Namespace",
        "CustomResourceDefinition",
        "Deployment",
        "DaemonSet",
        "ConfigMap",
        "ValidatingAdmissionPolicy",
    ] {
        assert!(
            rendered.contains(&format!("kind: {kind}\n")),
            "no {kind} rendered"
        );
    }
    assert!(rendered.contains("namespace: tessera-system"));
}

/// `kubectl kustomize` of an install directory, or `None` when kubectl is not installed.
fn render_install(dir: &str) -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../install")
        .join(dir);
    let Ok(out) = std::process::Command::new("kubectl")
        .args(["kustomize"])
        .arg(&path)
        .output()
    else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "skipping {dir}: kubectl is not installed"
        );
        return None;
    };
    assert!(
        out.status.success(),
        "{dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_install_overlays_set_image_scheduler_version_and_mps() {
    let Some(example) = render_install("example") else {
        return;
    };
    assert!(example.contains("image: registry.example.com/tessera:0.1.0"));
    assert!(
        !example.contains("ghcr.io/tessera-dev/tessera"),
        "every image rewritten"
    );
    assert!(example.contains("image: registry.k8s.io/kube-scheduler:v1.36.2"));
    assert!(example.contains("name: tessera-mps-daemon"));
    let no_mps = render_install("no-mps").unwrap();
    assert!(
        !no_mps.contains("name: tessera-mps-daemon"),
        "the MPS DaemonSet is left out"
    );
    assert!(
        !no_mps.contains("--mps-root"),
        "the device plugin waits for no daemon"
    );
    assert!(
        no_mps.contains("--soft-sharing"),
        "shares are placed without MPS"
    );
}

#[test]
fn the_mps_daemon_is_never_restarted_under_running_work_and_shares_its_root() {
    let all = workloads();
    let (_, _, mps) = all
        .iter()
        .find(|(_, n, _)| n == "tessera-mps-daemon")
        .expect("an MPS DaemonSet");
    let (_, _, plugin) = all
        .iter()
        .find(|(_, n, _)| n == "tessera-device-plugin")
        .expect("the device plugin");
    let docs = documents();
    let ds = docs
        .iter()
        .find(|(_, d)| d["metadata"]["name"] == "tessera-mps-daemon")
        .map(|(_, d)| d)
        .unwrap();
    assert_eq!(ds["spec"]["updateStrategy"]["type"], "OnDelete");
    let host = |spec: &PodSpec, path: &str| {
        spec.volumes
            .iter()
            .flatten()
            .any(|v| v.host_path.as_ref().is_some_and(|h| h.path == path))
    };
    assert!(host(mps, "/run/tessera/mps") && host(mps, "/run/tessera/mps/shm"));
    assert!(host(plugin, "/run/tessera/mps"));
    let mounted_at = |spec: &PodSpec, at: &str| {
        spec.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == at)
    };
    assert!(
        mounted_at(mps, "/dev/shm"),
        "the server's /dev/shm is the shared directory"
    );
    assert!(
        mounted_at(plugin, "/run/tessera/mps"),
        "same path as on the node"
    );
    assert!(
        plugin.containers[0]
            .args
            .iter()
            .flatten()
            .any(|a| a == "--mps-root=/run/tessera/mps")
    );
}

#[test]
fn every_workload_has_probes_on_a_named_port() {
    for (file, name, spec) in workloads() {
        for c in &spec.containers {
            let ports: Vec<String> = c
                .ports
                .iter()
                .flatten()
                .filter_map(|p| p.name.clone())
                .collect();
            assert!(
                !ports.is_empty(),
                "{}: {name} has no named port",
                file.display()
            );
            let probes = [
                ("liveness", &c.liveness_probe),
                ("readiness", &c.readiness_probe),
            ];
            for (kind, probe) in probes {
                let probe = probe
                    .as_ref()
                    .unwrap_or_else(|| panic!("{}: {name} has no {kind} probe", file.display()));
                let get = probe.http_get.as_ref().expect("an HTTP probe");
                let port = match &get.port {
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s,
                    other => panic!("{name}: {kind} probe on {other:?}, not a named port"),
                };
                assert!(
                    ports.contains(port),
                    "{name}: {kind} probe port {port} not declared"
                );
            }
        }
    }
}

#[test]
fn the_monitoring_component_scrapes_every_component_on_its_declared_port() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().unwrap();
    // An install beside the shipped ones (kustomize takes only relative paths), removed after.
    let dir = tempfile::Builder::new()
        .prefix(".monitoring-test")
        .tempdir_in(root.join("install"))
        .unwrap();
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../../manifests\ncomponents:\n- ../components/monitoring\n",
    )
    .unwrap();
    let Ok(out) = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir.path())
        .output()
    else {
        eprintln!("skipping the monitoring render: kubectl is not installed");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_slice(&out.stdout)
        .map(|d| Value::deserialize(d).unwrap())
        .collect();
    let named = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
            .clone()
    };
    let monitor = named("ServiceMonitor", "tessera");
    let scraped: Vec<&str> = monitor["spec"]["endpoints"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| e["port"].as_str().unwrap())
        .collect();
    let dashboard = named("ConfigMap", "tessera-grafana-dashboard");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(dashboard["metadata"]["namespace"], "tessera-system");
    assert!(
        dashboard["data"]["tessera.json"]
            .as_str()
            .unwrap()
            .contains("\"panels\"")
    );
    let workloads = workloads();
    for component in ["webhook", "extender", "device-plugin", "mps-daemon"] {
        let service: Service =
            serde_yaml_ng::from_value(named("Service", &format!("tessera-{component}-metrics")))
                .unwrap();
        let spec = service.spec.unwrap();
        let selected = spec.selector.unwrap()["app.kubernetes.io/name"].clone();
        let (_, _, pod) = workloads
            .iter()
            .find(|(_, n, _)| *n == selected)
            .unwrap_or_else(|| panic!("{component}: selects {selected}, no such workload"));
        for port in spec.ports.unwrap() {
            assert!(
                scraped.contains(&port.name.as_deref().unwrap()),
                "{component}: port {:?} is not scraped",
                port.name
            );
            let target = match port.target_port.unwrap() {
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s,
                other => panic!("{component}: target port {other:?} is not named"),
            };
            let declared = pod.containers[0]
                .ports
                .iter()
                .flatten()
                .any(|p| p.name.as_deref() == Some(target.as_str()));
            assert!(
                declared,
                "{component}: target port {target} is not declared"
            );
        }
    }
}

/// The node-selector terms of `workload`'s required node affinity.
fn required_terms(name: &str) -> Vec<k8s_openapi::api::core::v1::NodeSelectorTerm> {
    let (_, _, spec) = workloads()
        .into_iter()
        .find(|(_, n, _)| n == name)
        .unwrap_or_else(|| panic!("no workload {name}"));
    spec.affinity
        .and_then(|a| a.node_affinity)
        .and_then(|n| n.required_during_scheduling_ignored_during_execution)
        .map(|r| r.node_selector_terms)
        .unwrap_or_default()
}

/// True when a node labelled `tessera.dev/gpu-path=dra` (and anything else) can match `term`.
fn admits_dra_node(term: &k8s_openapi::api::core::v1::NodeSelectorTerm) -> bool {
    !term.match_expressions.iter().flatten().any(|e| {
        e.key == "tessera.dev/gpu-path"
            && e.operator == "NotIn"
            && e.values.iter().flatten().any(|v| v == "dra")
    })
}

#[test]
fn a_node_is_served_by_the_device_plugin_or_the_dra_plugin_never_both() {
    let device_plugin = required_terms("tessera-device-plugin");
    assert!(!device_plugin.is_empty());
    for term in &device_plugin {
        assert!(
            !admits_dra_node(term),
            "a device-plugin term admits DRA nodes (terms are ORed): {term:?}"
        );
    }
    let dra = required_terms("tessera-dra-plugin");
    assert!(!dra.is_empty());
    for term in &dra {
        let requires = term.match_expressions.iter().flatten().any(|e| {
            e.key == "tessera.dev/gpu-path"
                && e.operator == "In"
                && e.values.as_deref() == Some(&["dra".to_string()][..])
        });
        assert!(
            requires,
            "a DRA-plugin term admits nodes not moved to DRA: {term:?}"
        );
    }
}
