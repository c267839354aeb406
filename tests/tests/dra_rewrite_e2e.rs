//! End to end, users' pod specs on the DRA path (issue 32, part 3) against a real apiserver,
//! kube-scheduler and kubelet: the real `tessera webhook` (shipped gpu-sharing profile, its
//! claim-template controller) is registered with the shipped `dra.tessera.dev` entry for this
//! test's namespace, labelled `tessera.dev/gpu-path=dra`, and `tessera dra-plugin` runs on the
//! node. A pod asking with `tessera.dev/gpu-mem`/`gpu-core` and one asking with HAMi's names
//! are rewritten to claims, the controller makes their templates, the real scheduler allocates
//! both on the one GPU, and each runs on the real kubelet with the MPS limits of its share (the
//! first also shows the CDI mounts). Then a pod asking `nvidia.com/gpu: 1`, unchanged, gets a
//! whole GPU through the DeviceClass's `extendedResourceName`.
//!
//! Needs `TESSERA_E2E_KUBECONFIG` (prints a skip line when unset), v1.36, a containerd with CDI
//! on, and must run on the node as root, where the apiserver reaches 127.0.0.1 (the webhook
//! listens there). Variables as in `dra_plugin_e2e.rs`; with `TESSERA_E2E_KUBE_SCHEDULER` the
//! pods go to a kube-scheduler of their own (named for this run, so no other test's scheduler
//! takes them), else to the default scheduler.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod dra_e2e_support;
mod webhook_support;

use std::path::{Path, PathBuf};

use base64::Engine;
use dra_e2e_support::*;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::resource::v1::{
    DeviceClass, ResourceClaim, ResourceClaimTemplate, ResourceSlice,
};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::{Value, json};
use tessera_tests::e2e::{self, KillOnDrop};

/// Deletes what the test made: the webhook configuration, the namespace (pods at once: after a
/// failure the plugin may be gone), the slice, the DeviceClass when the test made it.
struct Cleanup {
    kubeconfig: PathBuf,
    webhook: String,
    namespace: String,
    slice: String,
    class_created: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (mwc, ns, slice, class) = (
            self.webhook.clone(),
            self.namespace.clone(),
            self.slice.clone(),
            self.class_created,
        );
        e2e::cleanup_blocking(self.kubeconfig.clone(), move |client| async move {
            let dp = DeleteParams::default();
            let _ = Api::<MutatingWebhookConfiguration>::all(client.clone())
                .delete(&mwc, &dp)
                .await;
            let now = DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            };
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let _ = pods.delete_collection(&now, &Default::default()).await;
            let _ = Api::<Namespace>::all(client.clone()).delete(&ns, &dp).await;
            let _ = Api::<ResourceSlice>::all(client.clone())
                .delete(&slice, &dp)
                .await;
            if class {
                let _ = Api::<DeviceClass>::all(client).delete(DRIVER, &dp).await;
            }
        });
    }
}

/// The shipped `dra.tessera.dev` entry, calling `url` with `ca`, for `namespace` only.
fn webhook_config(
    name: &str,
    url: &str,
    ca_pem: &str,
    namespace: &str,
) -> MutatingWebhookConfiguration {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/webhook/mutatingwebhookconfiguration.yaml");
    let shipped: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut entry = shipped["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "dra.tessera.dev")
        .expect("the shipped configuration has the dra.tessera.dev entry")
        .clone();
    entry["name"] = json!(format!("{name}.e2e.tessera.dev"));
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    entry["clientConfig"] = json!({"url": url, "caBundle": bundle});
    entry["namespaceSelector"]["matchExpressions"]
        .as_array_mut()
        .unwrap()
        .push(
            json!({"key": "kubernetes.io/metadata.name", "operator": "In", "values": [namespace]}),
        );
    serde_json::from_value(json!({"metadata": {"name": name}, "webhooks": [entry]})).unwrap()
}

fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// The shipped gpu-sharing profile, sending its pods to `scheduler`.
fn profiles_file(dir: &Path, scheduler: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/profiles/gpu-sharing.yaml");
    let mut profile: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    profile["spec"]["gpu"]["schedulerName"] = json!(scheduler);
    let out = dir.join("profiles.yaml");
    std::fs::write(&out, serde_yaml_ng::to_string(&profile).unwrap()).unwrap();
    out
}

/// `tessera webhook` on `addr` with the profiles file and the cluster (its controllers).
fn start_webhook(
    bin: &Path,
    dir: &Path,
    addr: &str,
    profiles: &Path,
    kubeconfig: &Path,
) -> KillOnDrop {
    let ca = webhook_support::Ca::new("dra-rewrite-e2e");
    let (cert, key, _) = ca.leaf();
    std::fs::write(dir.join("tls.crt"), cert).unwrap();
    std::fs::write(dir.join("tls.key"), key).unwrap();
    std::fs::write(dir.join("ca.crt"), pem(&ca.der)).unwrap();
    let (crt, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let args: Vec<&std::ffi::OsStr> = vec![
        "--log-level".as_ref(),
        "info".as_ref(),
        "webhook".as_ref(),
        "--listen".as_ref(),
        addr.as_ref(),
        "--tls-cert".as_ref(),
        crt.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
        "--profiles".as_ref(),
        profiles.as_os_str(),
        "--kubeconfig".as_ref(),
        kubeconfig.as_os_str(),
    ];
    tessera_tests::process::spawn_logged(bin, args, &dir.join("webhook.log"))
}

/// A kube-scheduler of its own named `name` (no extender: DRA allocation is kube-scheduler's).
fn start_scheduler(binary: &Path, dir: &Path, kubeconfig: &Path, name: &str) -> KillOnDrop {
    let config = json!({
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": kubeconfig.display().to_string()},
        "leaderElection": {"leaderElect": false},
        "profiles": [{"schedulerName": name}]
    });
    let path = dir.join("scheduler.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    tessera_tests::scheduler::start_scheduler(binary, &path, &dir.join("scheduler.log"))
}

fn pod(name: &str, node: &str, image: &str, limits: Value, extra: Value) -> Pod {
    let mut p = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main",
                "image": image,
                "imagePullPolicy": "Never",
                "resources": {"limits": limits}
            }]
        }
    });
    json_patch::merge(&mut p, &extra);
    serde_json::from_value(p).unwrap()
}

/// The claim reserved for pod `pod`: (name, uid, device, consumed memory, consumed compute).
async fn claim_of(
    claims: &Api<ResourceClaim>,
    pod: &str,
) -> Option<(String, String, String, String, String)> {
    let list = claims.list(&Default::default()).await.ok()?;
    let c = list.items.into_iter().find(|c| {
        c.status
            .as_ref()
            .and_then(|s| s.reserved_for.as_ref())
            .is_some_and(|r| r.iter().any(|r| r.name == pod))
    })?;
    let results = c
        .status
        .as_ref()?
        .allocation
        .as_ref()?
        .devices
        .as_ref()?
        .results
        .clone()?;
    let r = results.first()?;
    let consumed = r.consumed_capacity.clone().unwrap_or_default();
    let q = |k: &str| consumed.get(k).map(|q| q.0.clone()).unwrap_or_default();
    Some((
        c.metadata.name.clone()?,
        c.metadata.uid.clone()?,
        r.device.clone(),
        q("memory"),
        q("compute"),
    ))
}

/// With `TESSERA_E2E_CAPTURE_DIR`: the allocated claims and the plugin's ResourceSlice as the
/// apiserver serves them (every field, as raw JSON), for `tests/fixtures/dra/captured/`.
async fn capture(client: &kube::Client, namespace: &str, slice: &str) {
    let Some(dir) = env("TESSERA_E2E_CAPTURE_DIR").map(PathBuf::from) else {
        return;
    };
    std::fs::create_dir_all(&dir).unwrap();
    let kind = |kind: &str, plural: &str| {
        let gvk = kube::api::GroupVersionKind::gvk("resource.k8s.io", "v1", kind);
        kube::api::ApiResource::from_gvk_with_plural(&gvk, plural)
    };
    let claims: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &kind("ResourceClaim", "resourceclaims"),
    );
    for c in claims.list(&Default::default()).await.unwrap() {
        let name = c.metadata.name.clone().unwrap();
        let text = serde_json::to_string_pretty(&c).unwrap();
        std::fs::write(dir.join(format!("resourceclaim.{name}.json")), text).unwrap();
    }
    let slices: Api<kube::api::DynamicObject> =
        Api::all_with(client.clone(), &kind("ResourceSlice", "resourceslices"));
    let s = slices.get(slice).await.unwrap();
    let text = serde_json::to_string_pretty(&s).unwrap();
    std::fs::write(dir.join("resourceslice.json"), text).unwrap();
    println!(
        "captured the claims and the ResourceSlice in {}",
        dir.display()
    );
}

fn templates(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.resource_claims.iter().flatten())
        .filter_map(|c| c.resource_claim_template_name.clone())
        .collect()
}

#[tokio::test]
async fn pods_asking_in_their_own_names_run_through_dra_on_the_real_kubelet() {
    let Some(kubeconfig) = e2e::kubeconfig("dra_rewrite_e2e") else {
        return;
    };
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let client = e2e::client(&kubeconfig).await.unwrap();
    let node = ready_node(&client).await;
    let namespace = e2e::unique("dra-rewrite");
    let gpu = format!("GPU-{}", uuid_tail(&namespace));
    let slice_name = format!("{node}-{DRIVER}");
    let class_created = ensure_device_class(&client).await;
    let _cleanup = Cleanup {
        kubeconfig: kubeconfig.clone(),
        webhook: namespace.clone(),
        namespace: namespace.clone(),
        slice: slice_name.clone(),
        class_created,
    };
    let dir = node_dir(&gpu);
    let bin = tessera();

    // The pods' scheduler: one of this run's own when there is a binary, else the default.
    let (scheduler, _scheduler) = match env(e2e::KUBE_SCHEDULER_ENV) {
        Some(binary) => {
            let name = format!("{namespace}-scheduler");
            let s = start_scheduler(Path::new(&binary), dir.path(), &kubeconfig, &name);
            (name, Some(s))
        }
        None => ("default-scheduler".to_string(), None),
    };
    let addr = tessera_tests::process::free_addr().to_string();
    let profiles = profiles_file(dir.path(), &scheduler);
    let _webhook = start_webhook(&bin, dir.path(), &addr, &profiles, &kubeconfig);
    let metrics = tessera_tests::process::free_addr();
    let _plugin = start_plugin(&bin, dir.path(), &node, &kubeconfig, metrics);
    registered(metrics, dir.path()).await;
    let slices: Api<ResourceSlice> = Api::all(client.clone());
    e2e::wait_for("the ResourceSlice with an untainted GPU", SLOW, || async {
        let s = slices.get_opt(&slice_name).await.ok()??;
        let d = s.spec.devices?.into_iter().next()?;
        (d.taints.unwrap_or_default().is_empty()).then_some(())
    })
    .await
    .unwrap();

    // The namespace on the DRA path, and the shipped entry registered for it alone.
    let ns: Namespace = serde_json::from_value(json!({"metadata": {
        "name": namespace, "labels": {"tessera.dev/gpu-path": "dra"}}}))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let ca = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
    let url = format!("https://{addr}/mutate-dra");
    let mwc = webhook_config(&namespace, &url, &ca, &namespace);
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &mwc)
        .await
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let claims: Api<ResourceClaim> = Api::namespaced(client.clone(), &namespace);
    let pp = PostParams::default();
    let tessera_pod = pod(
        "tessera",
        &node,
        &mounts_image(),
        json!({"tessera.dev/gpu-mem": "8192", "tessera.dev/gpu-core": "25"}),
        json!({"spec": {"schedulerName": scheduler}}),
    );
    let app = env("TESSERA_E2E_IMAGE").unwrap_or_else(|| "local/app:1".into());
    let hami_pod = pod(
        "hami",
        &node,
        &app,
        json!({"nvidia.com/gpu": "1", "nvidia.com/gpumem": "16384", "nvidia.com/gpucores": "50"}),
        json!({"metadata": {"labels": {"tessera.dev/gpu-sharing": "enabled"}}}),
    );
    // Memory alone: it holds no compute, so it runs beside the two (25% + 50% of compute) on
    // the same GPU, with a memory limit and no thread limit.
    let memory_pod = pod(
        "memory",
        &node,
        &app,
        json!({"tessera.dev/gpu-mem": "4096"}),
        json!({"spec": {"schedulerName": scheduler}}),
    );
    // The webhook may still be starting: the apiserver refuses (failurePolicy Fail) until then.
    for p in [&tessera_pod, &hami_pod, &memory_pod] {
        let name = p.metadata.name.clone().unwrap();
        e2e::wait_for(&format!("pod {name} admitted"), SLOW, || async {
            match pods.create(&pp, p).await {
                Ok(_) => Some(()),
                Err(e) => {
                    eprintln!("creating {name}: {e}");
                    None
                }
            }
        })
        .await
        .unwrap();
    }

    // Rewritten: no Tessera or HAMi names left, a claim from the template of each share.
    for (name, template) in [
        ("tessera", "tessera-share-8192mi-25"),
        ("hami", "tessera-share-16384mi-50"),
        ("memory", "tessera-share-4096mi-0"),
    ] {
        let p = pods.get(name).await.unwrap();
        assert_eq!(templates(&p), [template], "{name}");
        let spec = p.spec.as_ref().unwrap();
        let limits = spec.containers[0]
            .resources
            .clone()
            .unwrap()
            .limits
            .unwrap_or_default();
        assert!(
            limits.keys().all(|k| !k.contains("gpu")),
            "{name}: {limits:?}"
        );
        assert_eq!(
            spec.scheduler_name.as_deref(),
            Some(scheduler.as_str()),
            "{name}"
        );
        println!("{name}: rewritten to a claim from {template}, scheduler {scheduler}");
    }
    // Made by the controller in the webhook, labelled for `tessera uninstall`.
    let made: Api<ResourceClaimTemplate> = Api::namespaced(client.clone(), &namespace);
    for template in [
        "tessera-share-8192mi-25",
        "tessera-share-16384mi-50",
        "tessera-share-4096mi-0",
    ] {
        let t = e2e::wait_for(&format!("template {template}"), SLOW, || async {
            made.get_opt(template).await.ok()?
        })
        .await
        .unwrap();
        assert_eq!(
            t.metadata.labels.unwrap()["app.kubernetes.io/part-of"],
            "tessera"
        );
    }

    running(&pods, "tessera").await;
    running(&pods, "hami").await;
    running(&pods, "memory").await;
    let mut uids = Vec::new();
    for (name, mem, pct, limit) in [
        ("tessera", "8Gi", "25", "0=8192M"),
        ("hami", "16Gi", "50", "0=16384M"),
        ("memory", "4Gi", "0", "0=4096M"),
    ] {
        let (claim, uid, device, memory, compute) = claim_of(&claims, name).await.unwrap();
        println!("{name}: claim {claim} on {device}, consumed memory {memory}, compute {compute}");
        assert_eq!(
            (device.as_str(), compute.as_str()),
            ("gpu-0", pct),
            "{name}"
        );
        let bytes = tessera_core::quantity::parse_whole;
        assert_eq!(
            bytes(&memory).ok(),
            bytes(mem).ok(),
            "{name}: consumed memory {memory}"
        );
        // A share holding no compute gets no thread limit.
        let threads = (pct != "0").then_some(pct);
        for (key, value) in [
            ("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", Some(limit)),
            ("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", threads),
        ] {
            let seen = e2e::container_env(&pods, name, key).await;
            assert_eq!(seen.as_deref(), value, "{name}: {key}");
        }
        uids.push(uid);
    }
    capture(&client, &namespace, &slice_name).await;
    let shown = assert_mps_mounts(&pods, "tessera", &dir.path().join("mps")).await;
    println!("tessera's container shows:\n{}", shown.join("\n"));

    // Both go while the plugin runs, so the kubelet unprepares their claims.
    for name in ["tessera", "hami", "memory"] {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }
    for uid in &uids {
        e2e::wait_for("the shares' CDI specs removed", SLOW, || async {
            cdi_spec(uid).is_none().then_some(())
        })
        .await
        .unwrap();
    }

    // A whole GPU by its usual name, the pod unchanged (the DRA entry does not match it).
    let classes: Api<DeviceClass> = Api::all(client.clone());
    let mapped = classes
        .get(DRIVER)
        .await
        .unwrap()
        .spec
        .extended_resource_name;
    if mapped.as_deref() != Some("nvidia.com/gpu") {
        println!(
            "the DeviceClass was made elsewhere without extendedResourceName: whole GPU not checked"
        );
        return;
    }
    let whole = pod(
        "whole",
        &node,
        &app,
        json!({"nvidia.com/gpu": "1"}),
        json!({"spec": {"schedulerName": scheduler}}),
    );
    pods.create(&pp, &whole).await.unwrap();
    let p = pods.get("whole").await.unwrap();
    assert!(templates(&p).is_empty(), "not rewritten");
    running(&pods, "whole").await;
    let (claim, uid, device, memory, compute) = claim_of(&claims, "whole").await.unwrap();
    println!(
        "whole: claim {claim} (made by the scheduler) on {device}, memory {memory}, compute {compute}"
    );
    assert_eq!((device.as_str(), compute.as_str()), ("gpu-0", "100"));
    let seen = e2e::container_env(&pods, "whole", "NVIDIA_VISIBLE_DEVICES").await;
    assert_eq!(seen.as_deref(), Some(gpu.as_str()));
    pods.delete("whole", &DeleteParams::default())
        .await
        .unwrap();
    e2e::wait_for("whole's CDI spec removed", SLOW, || async {
        cdi_spec(&uid).is_none().then_some(())
    })
    .await
    .unwrap();
}
