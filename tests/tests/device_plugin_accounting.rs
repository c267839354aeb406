//! Per-container GPU accounting through the real FFI path: the NVML stand-in reports two share
//! clients on one GPU (one in the compute list, one only in the MPS list) and a process outside
//! any pod; a fake host /proc gives their cgroups in the systemd and cgroupfs forms; the pods
//! carry their assignments and container IDs. `/metrics` then shows each container's memory
//! used, its limit and its SM utilisation, labelled namespace/pod/container/node/gpu.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // helpers outside #[test] too

mod device_plugin_support;

use std::path::Path;
use std::sync::Arc;

use device_plugin_support::*;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStatus, Pod, PodStatus,
};
use tessera_device_plugin::pods::MemoryPods;
use tessera_serve::exposition::to_prometheus_text;
use tessera_tests::promtool;

const GIB: u64 = 1 << 30;

fn uid(n: u8) -> String {
    format!("6f1d2c3b-0000-4000-8000-{n:012x}")
}

fn container_id(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

/// Share pod `ml/<name>` with UID `uid(n)`, container `main` running as `container_id(n)`,
/// assigned `mem_mib` on `gpu`.
fn share_pod(name: &str, n: u8, gpu: &str, mem_mib: u64) -> Pod {
    let mut pod = allocating_pod(
        name,
        "2026-01-01T00:00:00Z",
        &[gpu.to_string()],
        mem_mib,
        250,
    );
    pod.metadata.uid = Some(uid(n));
    pod.status = Some(PodStatus {
        container_statuses: Some(vec![ContainerStatus {
            name: "main".into(),
            container_id: Some(format!("containerd://{}", container_id(n))),
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    });
    pod
}

/// Writes `<proc>/<pid>/cgroup`.
fn cgroup(proc_root: &Path, pid: u32, text: &str) {
    let dir = proc_root.join(pid.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cgroup"), text).unwrap();
}

/// The value of the sample `name{labels}` in `text`.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().unwrap())
}

fn labels(pod: &str, gpu: &str) -> String {
    format!("namespace=\"ml\",pod=\"{pod}\",container=\"main\",node=\"{NODE}\",gpu=\"{gpu}\"")
}

const USED: &str = "tessera_device_plugin_container_gpu_memory_used_bytes";
const LIMIT: &str = "tessera_device_plugin_container_gpu_memory_limit_bytes";
const SM: &str = "tessera_device_plugin_container_gpu_sm_utilization_ratio";

/// Waits until `ok` holds for the plugin's metrics, and returns them.
async fn metrics_when(running: &Running, ok: impl Fn(&str) -> bool) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            let text = running.metrics_text();
            if ok(&text) {
                return text;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("metrics never matched:\n{}", running.metrics_text()))
}

/// GPU 0 holds two shares (PIDs 4101 and 4102) and the MPS server (4103, outside any pod);
/// GPU 1 does not sample per-process utilisation and holds one share (4201).
fn node_with_processes(proc_root: &Path) -> Node {
    let node = Node::two_gpus();
    std::fs::write(
        node.dir.path().join("nvml-standin.procs"),
        format!(
            "0 4101 {} 20 c\n0 4102 {} 45 m\n0 4103 {} 5 c\n1 4201 {} - c\n",
            3 * GIB,
            5 * GIB,
            GIB,
            2 * GIB
        ),
    )
    .unwrap();
    std::fs::write(node.dir.path().join("nvml-standin.nosm"), "1\n").unwrap();
    let systemd_uid = uid(1).replace('-', "_");
    cgroup(
        proc_root,
        4101,
        &format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{systemd_uid}.slice/cri-containerd-{}.scope\n",
            container_id(1)
        ),
    );
    cgroup(
        proc_root,
        4102,
        &format!(
            "0::/kubepods/besteffort/pod{}/{}\n",
            uid(2),
            container_id(2)
        ),
    );
    cgroup(proc_root, 4103, "0::/system.slice/tessera-mps.service\n");
    cgroup(
        proc_root,
        4201,
        &format!("0::/kubepods/pod{}/{}\n", uid(3), container_id(3)),
    );
    node
}

#[tokio::test]
async fn each_share_container_shows_its_use_its_limit_and_an_overrun() {
    let proc = tempfile::tempdir().unwrap();
    let node = node_with_processes(proc.path());
    let mut config = node.config();
    config.proc_root = Some(proc.path().to_path_buf());
    let pods = Arc::new(MemoryPods::default());
    let (gpu0, gpu1) = (uuid(0), uuid(1));
    pods.set(vec![
        share_pod("a", 1, &gpu0, 4096),
        share_pod("b", 2, &gpu0, 4096),
        share_pod("c", 3, &gpu1, 8192),
    ]);
    let running = Running::start_with(node, config, pods.clone()).await;
    let text = metrics_when(&running, |t| t.contains(&labels("c", &gpu1))).await;

    let got = |name, pod, gpu| sample(&text, name, &labels(pod, gpu));
    assert_eq!(got(USED, "a", &gpu0), Some((3 * GIB) as f64), "{text}");
    assert_eq!(got(LIMIT, "a", &gpu0), Some((4 * GIB) as f64));
    assert_eq!(got(SM, "a", &gpu0), Some(0.2));
    // B's client is listed only by the MPS call, and holds more than its 4 GiB share.
    assert_eq!(got(USED, "b", &gpu0), Some((5 * GIB) as f64));
    assert_eq!(got(LIMIT, "b", &gpu0), Some((4 * GIB) as f64));
    assert!(
        got(USED, "b", &gpu0) > got(LIMIT, "b", &gpu0),
        "B over its limit"
    );
    assert_eq!(got(SM, "b", &gpu0), Some(0.45));
    // GPU 1 has no per-process sampling: no utilisation series rather than a false zero.
    assert_eq!(got(USED, "c", &gpu1), Some((2 * GIB) as f64));
    assert_eq!(got(SM, "c", &gpu1), None);
    // The MPS server's gigabyte belongs to no share.
    assert_eq!(text.matches(&format!("{USED}{{")).count(), 3, "{text}");
    // Per-GPU series name the node.
    assert!(
        text.contains(&format!(
            "tessera_device_plugin_gpu_memory_total_bytes{{node=\"{NODE}\",gpu=\"{gpu0}\"}} {}",
            40 * GIB
        )),
        "{text}"
    );
    promtool::assert_clean(&to_prometheus_text(&text));

    // B's container ends: its series go, the others stay.
    std::fs::write(
        running.node.dir.path().join("nvml-standin.procs"),
        format!("0 4101 {} 20 c\n1 4201 {} - c\n", 3 * GIB, 2 * GIB),
    )
    .unwrap();
    pods.set(vec![
        share_pod("a", 1, &gpu0, 4096),
        share_pod("c", 3, &gpu1, 8192),
    ]);
    let text = metrics_when(&running, |t| !t.contains("pod=\"b\"")).await;
    assert_eq!(
        sample(&text, USED, &labels("a", &gpu0)),
        Some((3 * GIB) as f64)
    );
    running.stop().await;
}

#[tokio::test]
async fn a_started_share_without_a_gpu_process_shows_zero_use() {
    let proc = tempfile::tempdir().unwrap();
    let node = Node::two_gpus();
    let mut config = node.config();
    config.proc_root = Some(proc.path().to_path_buf());
    let pods = Arc::new(MemoryPods::default());
    pods.set(vec![share_pod("idle", 1, &uuid(0), 2048)]);
    let running = Running::start_with(node, config, pods).await;
    let text = metrics_when(&running, |t| t.contains("pod=\"idle\"")).await;
    let l = labels("idle", &uuid(0));
    assert_eq!(sample(&text, USED, &l), Some(0.0), "{text}");
    assert_eq!(sample(&text, LIMIT, &l), Some((2 * GIB) as f64));
    running.stop().await;
}
