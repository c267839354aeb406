//! End to end against a real kubelet and kube-scheduler: `tessera dra-plugin` (the real
//! binary, NVML answered by the stand-in, a ready MPS status written by the test) registers with
//! the node's kubelet and publishes its ResourceSlice; two ResourceClaims of the
//! `gpu.tessera.dev` DeviceClass for 8 GiB / 25% and 16 GiB / 50% land on the one GPU, their
//! pods run with the MPS limits of what each consumed (CDI specs and the containers' env); a
//! third claim that does not fit keeps its pod pending with a reason; after a plugin restart,
//! deleting a pod unprepares its claim (the checkpoint) and frees the capacity the third needs.
//!
//! Needs `TESSERA_E2E_KUBECONFIG` (prints a skip line when unset), a cluster with
//! `resource.k8s.io/v1` and consumable capacity (v1.36), a containerd with CDI on, and must run
//! on the node, as root. Optional:
//! - `TESSERA_E2E_NODE`: the node (default: the first Ready node);
//! - `TESSERA_E2E_KUBELET_ROOT` (default `/var/lib/kubelet`);
//! - `TESSERA_E2E_CDI_DIR` (default `/var/run/cdi`, where containerd reads CDI specs);
//! - `TESSERA_E2E_IMAGE` (default `local/app:1`, an image whose program prints its environment
//!   and sleeps; pulled `Never`);
//! - `TESSERA_E2E_MOUNTS_IMAGE` (default `local/mounts:1`, see `device_plugin_mps_e2e.rs`): the
//!   first pod's image, which also prints its mounts and the MPS directories, so the test sees
//!   the pipe directory and `/dev/shm` of the CDI spec inside the container;
//! - `TESSERA_E2E_KUBELET_RESTART`: a shell command that restarts the kubelet; when set, the
//!   running containers and their prepared claims are checked across a restart, and the third
//!   claim is prepared by the restarted kubelet;
//! - `TESSERA_E2E_RUNTIME_WITHOUT_CDI=1`: the runtime does not apply CDI (containerd 1.6): the
//!   containers' env is not checked, the CDI specs still are.
//!
//! Pods are placed by the default scheduler (DRA allocation happens there) and kept on the node
//! by `nodeSelector`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // helpers outside #[test] too

mod dra_e2e_support;

use std::path::PathBuf;
use std::time::Duration;

use dra_e2e_support::*;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::resource::v1::{DeviceClass, ResourceClaim, ResourceSlice};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use tessera_tests::e2e;

fn claim(name: &str, memory: &str, compute: &str) -> ResourceClaim {
    serde_json::from_value(json!({
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name},
        "spec": {"devices": {"requests": [{
            "name": "gpu",
            "exactly": {
                "deviceClassName": DRIVER,
                "capacity": {"requests": {"memory": memory, "compute": compute}}
            }
        }]}}
    }))
    .unwrap()
}

fn pod(name: &str, claim: &str, node: &str, image: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "resourceClaims": [{"name": "gpu", "resourceClaimName": claim}],
            "containers": [{
                "name": "main",
                "image": image,
                "imagePullPolicy": "Never",
                "resources": {"claims": [{"name": "gpu"}]}
            }]
        }
    }))
    .unwrap()
}

/// The allocated device and consumed capacity of a claim.
async fn allocation(claims: &Api<ResourceClaim>, name: &str) -> (String, String, String) {
    let c = claims.get(name).await.unwrap();
    let r = &c
        .status
        .unwrap()
        .allocation
        .unwrap()
        .devices
        .unwrap()
        .results
        .unwrap()[0];
    let consumed = r.consumed_capacity.clone().unwrap_or_default();
    let q = |k: &str| consumed.get(k).map(|q| q.0.clone()).unwrap_or_default();
    (r.device.clone(), q("memory"), q("compute"))
}

fn spec_has(spec: &serde_json::Value, entry: &str) -> bool {
    spec["devices"][0]["containerEdits"]["env"]
        .as_array()
        .is_some_and(|e| e.iter().any(|v| v == entry))
}

/// Deletes the test's namespace and slice, and the DeviceClass when the test made it.
struct Cleanup {
    kubeconfig: PathBuf,
    namespace: String,
    slice: String,
    class_created: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (ns, slice, class) = (
            self.namespace.clone(),
            self.slice.clone(),
            self.class_created,
        );
        e2e::cleanup_blocking(self.kubeconfig.clone(), move |client| async move {
            let dp = DeleteParams::default();
            // After a failure the plugin may be gone: pods left would wait for it forever to
            // unprepare their claims, and hold the namespace.
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

#[tokio::test]
async fn claims_of_one_gpu_run_with_their_mps_limits_through_the_real_kubelet() {
    let Some(kubeconfig) = e2e::kubeconfig("dra_plugin_e2e") else {
        return;
    };
    let client = e2e::client(&kubeconfig).await.unwrap();
    let node = ready_node(&client).await;
    let namespace = e2e::unique("dra");
    let gpu = format!("GPU-{}", uuid_tail(&namespace));
    let slice_name = format!("{node}-{DRIVER}");
    let class_created = ensure_device_class(&client).await;
    let _cleanup = Cleanup {
        kubeconfig: kubeconfig.clone(),
        namespace: namespace.clone(),
        slice: slice_name.clone(),
        class_created,
    };
    let dir = node_dir(&gpu);
    let bin = tessera();
    let metrics = tessera_tests::process::free_addr();
    let plugin = start_plugin(&bin, dir.path(), &node, &kubeconfig, metrics);
    registered(metrics, dir.path()).await;

    // The slice: one shareable GPU, untainted once the MPS status is read.
    let slices: Api<ResourceSlice> = Api::all(client.clone());
    e2e::wait_for("the ResourceSlice with an untainted GPU", SLOW, || async {
        let s = slices.get_opt(&slice_name).await.ok()??;
        let d = s.spec.devices?.into_iter().next()?;
        let uuid = d.attributes?.get("uuid")?.string.clone()?;
        (uuid == gpu && d.taints.unwrap_or_default().is_empty()).then_some(())
    })
    .await
    .unwrap();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let claims: Api<ResourceClaim> = Api::namespaced(client.clone(), &namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let pp = PostParams::default();
    for (name, mem, cpu) in [
        ("small", "8Gi", "25"),
        ("large", "16Gi", "50"),
        ("third", "48Gi", "50"),
    ] {
        claims.create(&pp, &claim(name, mem, cpu)).await.unwrap();
    }
    let app = env("TESSERA_E2E_IMAGE").unwrap_or_else(|| "local/app:1".into());
    // "small" runs the mounts image: it shows the mounts its claim's CDI spec gives.
    pods.create(&pp, &pod("small", "small", &node, &mounts_image()))
        .await
        .unwrap();
    pods.create(&pp, &pod("large", "large", &node, &app))
        .await
        .unwrap();
    running(&pods, "small").await;
    running(&pods, "large").await;

    // Both on the one GPU, each with what it asked for.
    let small = allocation(&claims, "small").await;
    let large = allocation(&claims, "large").await;
    assert_eq!((small.0.as_str(), large.0.as_str()), ("gpu-0", "gpu-0"));
    assert_eq!((small.2.as_str(), large.2.as_str()), ("25", "50"));
    for (name, mem, pct) in [("small", "0=8192M", "25"), ("large", "0=16384M", "50")] {
        let uid = claims.get(name).await.unwrap().metadata.uid.unwrap();
        let spec = cdi_spec(&uid).unwrap_or_else(|| panic!("no CDI spec for claim {name}"));
        assert!(spec_has(
            &spec,
            &format!("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT={mem}")
        ));
        assert!(spec_has(
            &spec,
            &format!("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE={pct}")
        ));
        assert!(spec_has(&spec, &format!("NVIDIA_VISIBLE_DEVICES={gpu}")));
        if env("TESSERA_E2E_RUNTIME_WITHOUT_CDI").is_some() {
            eprintln!("{name}: container env not checked (TESSERA_E2E_RUNTIME_WITHOUT_CDI)");
            continue;
        }
        let seen = e2e::container_env(&pods, name, "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT").await;
        assert_eq!(
            seen.as_deref(),
            Some(mem),
            "{name}'s container env (CDI applied by the runtime)"
        );
    }
    if env("TESSERA_E2E_RUNTIME_WITHOUT_CDI").is_none() {
        let shown = assert_mps_mounts(&pods, "small", &dir.path().join("mps")).await;
        println!("small's container shows:\n{}", shown.join("\n"));
    }

    // `tessera inspect --claims` reads the same from the apiserver: both shares on gpu-0.
    let args: [&std::ffi::OsStr; 8] = [
        "inspect".as_ref(),
        "--claims".as_ref(),
        "-o".as_ref(),
        "json".as_ref(),
        "-n".as_ref(),
        namespace.as_ref(),
        "--kubeconfig".as_ref(),
        kubeconfig.as_os_str(),
    ];
    let out = tessera_tests::process::output_ok(&bin, args);
    let shown: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let device = shown["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["pool"] == node.as_str() && d["device"] == "gpu-0")
        .unwrap_or_else(|| panic!("no gpu-0 of {node} in {shown}"));
    assert_eq!(device["memoryHeld"], (24u64 << 30), "{shown}");
    assert_eq!(device["computeHeld"], 75, "{shown}");
    for (name, mem, pct) in [("small", 8u64 << 30, 25), ("large", 16u64 << 30, 50)] {
        let share = shown["shares"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["claim"] == format!("{namespace}/{name}").as_str())
            .unwrap_or_else(|| panic!("no share of {name} in {shown}"));
        assert_eq!(share["memoryBytes"], mem, "{shown}");
        assert_eq!(share["computePercent"], pct, "{shown}");
        assert_eq!(
            share["pods"],
            json!([format!("{namespace}/{name}")]),
            "{shown}"
        );
    }

    // A kubelet restart keeps the running containers and their prepared claims; the plugin
    // registers with the new kubelet (which prepares the third claim below).
    if let Some(cmd) = env(tessera_tests::e2e::KUBELET_RESTART_ENV) {
        let containers = |p: &Pod| {
            let s = p
                .status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .first()?
                .clone();
            Some((s.container_id, s.restart_count))
        };
        let before = [
            containers(&pods.get("small").await.unwrap()),
            containers(&pods.get("large").await.unwrap()),
        ];
        // Heartbeats are written in whole seconds: a status of the restart's own second counts.
        let restarted_at = k8s_openapi::jiff::Timestamp::from_second(
            k8s_openapi::jiff::Timestamp::now().as_second(),
        )
        .unwrap();
        tessera_tests::e2e::restart_kubelet(&cmd);
        let nodes: Api<Node> = Api::all(client.clone());
        e2e::wait_for("the restarted kubelet's Ready heartbeat", SLOW, || async {
            let n = nodes.get(&node).await.ok()?;
            let beat = n.status?.conditions?.into_iter().any(|c| {
                c.type_ == "Ready"
                    && c.status == "True"
                    && c.last_heartbeat_time.is_some_and(|b| b.0 >= restarted_at)
            });
            beat.then_some(())
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = [
            containers(&pods.get("small").await.unwrap()),
            containers(&pods.get("large").await.unwrap()),
        ];
        assert_eq!(before, after, "containers restarted with the kubelet");
        for name in ["small", "large"] {
            let uid = claims.get(name).await.unwrap().metadata.uid.unwrap();
            assert!(
                cdi_spec(&uid).is_some(),
                "{name}'s claim unprepared by the restart"
            );
        }
    }

    // 48 GiB fits the 56 GiB left, but 50% more compute does not: pending, with a reason.
    pods.create(&pp, &pod("third", "third", &node, &app))
        .await
        .unwrap();
    let reason = e2e::wait_for("pod third unschedulable", SLOW, || async {
        let p = pods.get("third").await.ok()?;
        let c = p
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled")?;
        (c.status == "False").then(|| c.message.unwrap_or_default())
    })
    .await
    .unwrap();
    assert!(!reason.is_empty(), "the pending pod says why");

    // A plugin restart keeps the prepared claims: the new process unprepares "large" when its
    // pod goes, from the checkpoint, and the third claim then fits.
    // SIGTERM, so the plugin removes its sockets as in a DaemonSet rollout.
    e2e::terminate(plugin, SLOW);
    let _plugin = start_plugin(&bin, dir.path(), &node, &kubeconfig, metrics);
    let large_uid = claims.get("large").await.unwrap().metadata.uid.unwrap();
    pods.delete("large", &DeleteParams::default())
        .await
        .unwrap();
    e2e::wait_for("large's CDI spec removed", SLOW, || async {
        cdi_spec(&large_uid).is_none().then_some(())
    })
    .await
    .unwrap();
    running(&pods, "third").await;
    let third = allocation(&claims, "third").await;
    assert_eq!((third.0.as_str(), third.2.as_str()), ("gpu-0", "50"));

    // The rest go while the plugin still runs, so the kubelet can unprepare their claims (a
    // pod whose driver is gone cannot finish terminating, nor can its namespace).
    for name in ["small", "third"] {
        let uid = claims.get(name).await.unwrap().metadata.uid.unwrap();
        pods.delete(name, &DeleteParams::default()).await.unwrap();
        e2e::wait_for(&format!("{name}'s CDI spec removed"), SLOW, || async {
            cdi_spec(&uid).is_none().then_some(())
        })
        .await
        .unwrap();
    }
}
