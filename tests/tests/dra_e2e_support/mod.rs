//! Shared by the DRA e2e tests (`dra_plugin_e2e`, `dra_rewrite_e2e`): the real `tessera`
//! binary, the node, a node directory with the NVML stand-in and a ready MPS root, the plugin
//! started there, the `gpu.tessera.dev` DeviceClass, CDI specs, and what a container of the
//! mounts image shows. Variables as in `dra_plugin_e2e.rs`.

// Test support: failing loudly is the point here, as in the tests themselves.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::resource::v1::DeviceClass;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use tessera_tests::e2e::{self, KillOnDrop};
pub use tessera_tests::e2e::{env, ready_node};

pub const SLOW: Duration = Duration::from_secs(120);
pub const DRIVER: &str = "gpu.tessera.dev";

/// The `tessera` binary, built with cargo (the tests crate has no binary of its own).
pub fn tessera() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["build", "-p", "tessera", "--message-format=json"])
        .current_dir(&workspace)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "building tessera failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "tessera")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo reports the tessera binary")
}

/// The node's directories for the plugin: the stand-in with one 80 GiB GPU, and an MPS root
/// whose status says a multi-user daemon holds it (heartbeat far ahead, so it stays fresh),
/// with a `control` file in the pipe directory and one in the shared memory, as a daemon leaves
/// them, so a container shows they are the node's.
pub fn node_dir(gpu: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let line = tessera_tests::standin::gpu_line(gpu, "NVIDIA A100-SXM4-80GB", 81920);
    tessera_tests::standin::install(dir.path(), &line);
    let mps = dir.path().join("mps");
    std::fs::create_dir_all(mps.join("pipe")).unwrap();
    std::fs::create_dir_all(mps.join("shm")).unwrap();
    std::fs::write(mps.join("pipe/control"), "").unwrap();
    std::fs::write(mps.join("shm/from-the-daemon"), "").unwrap();
    let heartbeat = jiff::Timestamp::now().as_second() + 24 * 3600;
    let status = json!({"version": "v1", "gpus": [gpu], "multiUser": true, "heartbeat": heartbeat});
    std::fs::write(mps.join("status.json"), status.to_string()).unwrap();
    dir
}

/// `tessera dra-plugin` on `node`, its log in the node directory.
pub fn start_plugin(
    bin: &Path,
    dir: &Path,
    node: &str,
    kubeconfig: &Path,
    metrics: std::net::SocketAddr,
) -> KillOnDrop {
    let kubelet_root = env("TESSERA_E2E_KUBELET_ROOT").unwrap_or_else(|| "/var/lib/kubelet".into());
    let cdi = cdi_dir();
    let lib = dir.join("libnvidia-ml.so");
    let mps = dir.join("mps");
    let metrics = metrics.to_string();
    let args: Vec<&std::ffi::OsStr> = vec![
        "--log-level".as_ref(),
        "info".as_ref(),
        "dra-plugin".as_ref(),
        "--node-name".as_ref(),
        node.as_ref(),
        "--kubelet-root".as_ref(),
        kubelet_root.as_ref(),
        "--cdi-dir".as_ref(),
        cdi.as_os_str(),
        "--nvml-lib".as_ref(),
        lib.as_os_str(),
        "--mps-root".as_ref(),
        mps.as_os_str(),
        "--metrics-listen".as_ref(),
        metrics.as_ref(),
        "--kubeconfig".as_ref(),
        kubeconfig.as_os_str(),
    ];
    tessera_tests::process::spawn_logged(bin, args, &dir.join("dra-plugin.log"))
}

/// Waits until the plugin is registered with the kubelet (`/readyz`): a pod that comes first
/// fails its prepare and waits for the kubelet's retry backoff.
pub async fn registered(metrics: std::net::SocketAddr, dir: &Path) {
    let ready = e2e::wait_for("the plugin registered (/readyz)", SLOW, || async {
        let answer = tessera_tests::process::get(metrics, "/readyz")?;
        answer.starts_with("HTTP/1.1 200").then_some(())
    })
    .await;
    if let Err(e) = ready {
        let log = std::fs::read_to_string(dir.join("dra-plugin.log")).unwrap_or_default();
        panic!("{e}\n{log}");
    }
}

pub async fn running(pods: &Api<Pod>, name: &str) {
    e2e::wait_for(&format!("pod {name} Running"), SLOW, || async {
        let p = pods.get(name).await.ok()?;
        (p.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await
    .unwrap();
}

pub fn cdi_dir() -> PathBuf {
    PathBuf::from(env("TESSERA_E2E_CDI_DIR").unwrap_or_else(|| "/var/run/cdi".into()))
}

pub fn cdi_spec(uid: &str) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(cdi_dir().join(format!("{DRIVER}-claim_{uid}.json")));
    text.ok().map(|t| serde_json::from_str(&t).unwrap())
}

/// The shipped DeviceClass (`manifests/dra-plugin/deviceclass.yaml`), created when the cluster
/// has none; true when this call made it (the caller deletes it after).
pub async fn ensure_device_class(client: &kube::Client) -> bool {
    let classes: Api<DeviceClass> = Api::all(client.clone());
    if classes.get_opt(DRIVER).await.unwrap().is_some() {
        return false;
    }
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/dra-plugin/deviceclass.yaml");
    let class: DeviceClass =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    classes
        .create(&PostParams::default(), &class)
        .await
        .unwrap();
    true
}

/// The image whose program prints its env, mounts and the MPS directories
/// (`device_plugin_mps_e2e.rs` says how it is built).
pub fn mounts_image() -> String {
    env("TESSERA_E2E_MOUNTS_IMAGE").unwrap_or_else(|| "local/mounts:1".into())
}

/// Waits for what the mounts image printed in pod `name`, and checks that the CDI spec's mounts
/// reached the container: the node's MPS pipe directory at the same path and its shared memory
/// at `/dev/shm` (the files put there on the node are listed inside). Returns the lines shown.
pub async fn assert_mps_mounts(pods: &Api<Pod>, name: &str, mps_root: &Path) -> Vec<String> {
    let logs = e2e::wait_for(&format!("{name}'s output"), SLOW, || async {
        let logs = pods.logs(name, &Default::default()).await.ok()?;
        logs.contains("sleeping").then_some(logs)
    })
    .await
    .unwrap();
    let pipe = mps_root.join("pipe").display().to_string();
    let wanted = [
        format!("ENV CUDA_MPS_PIPE_DIRECTORY={pipe}"),
        format!("LS {pipe}/control"),
        "LS /dev/shm/from-the-daemon".to_string(),
    ];
    for line in &wanted {
        assert!(
            logs.lines().any(|l| l == line),
            "{name}: missing {line:?} in:\n{logs}"
        );
    }
    let mounts: Vec<String> = logs
        .lines()
        .filter(|l| l.starts_with("MOUNT ") && (l.contains(&pipe) || l.contains(" /dev/shm ")))
        .map(String::from)
        .collect();
    assert!(
        mounts.iter().any(|m| m.contains(&format!(" {pipe} "))),
        "{name}: the pipe directory is not mounted:\n{logs}"
    );
    assert!(
        mounts.iter().any(|m| m.contains(" /dev/shm ")),
        "{name}: /dev/shm is not mounted:\n{logs}"
    );
    wanted.into_iter().chain(mounts).collect()
}

/// A UUID-shaped tail unique to this run, so the stand-in GPU is not mistaken for another.
pub fn uuid_tail(unique: &str) -> String {
    let digits: String = unique.chars().filter(char::is_ascii_alphanumeric).collect();
    format!(
        "00000000-0000-0000-0000-{:0>12}",
        &digits[digits.len().saturating_sub(12)..]
    )
}
