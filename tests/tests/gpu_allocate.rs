//! Allocate on a real GPU, for `tests/gpu/check.sh`: the device plugin on the real NVML with
//! `--mps-root`, a fake kubelet over its real socket, and pods assigned shares of the node's
//! first GPU. Writes what `Allocate` returned for each share (env and mounts) as JSON to
//! `$TESSERA_GPU_CHECK_OUT`, which the script then gives a CUDA client exactly.
//!
//! Ignored: it needs an NVIDIA GPU and a running `tessera mps-daemon` under
//! `$TESSERA_MPS_ROOT`. Run through the script, or:
//! `cargo test --release -p tessera-tests --test gpu_allocate -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod device_plugin_support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use device_plugin_support::{FakeKubelet, NODE, WAIT, allocating_pod, next};
use tessera_device_plugin::Plugin;
use tessera_device_plugin::api::v1beta1::device_plugin_client::DevicePluginClient;
use tessera_device_plugin::api::v1beta1::{AllocateRequest, ContainerAllocateRequest, Empty};
use tessera_device_plugin::config::Config;
use tessera_device_plugin::kubelet::unix_channel;
use tessera_device_plugin::metrics::Metrics;
use tessera_device_plugin::nvml::{Gpus, NvmlGpus};
use tessera_device_plugin::pods::MemoryPods;

/// The shares the check gives clients: (name, MiB, thousandths of compute); `whole` is the
/// whole GPU, as the extender assigns an exclusive container (all its memory, 100%).
const SHARES: [(&str, u64, u32); 4] = [
    ("share-8g-25", 8192, 250),
    ("share-16g-50", 16384, 500),
    ("share-4g-10", 4096, 100),
    ("whole", 0, 1000),
];

#[tokio::test]
#[ignore = "needs an NVIDIA GPU and tessera mps-daemon; run by tests/gpu/check.sh"]
async fn allocate_on_the_real_gpu() {
    let out =
        PathBuf::from(std::env::var_os("TESSERA_GPU_CHECK_OUT").expect("TESSERA_GPU_CHECK_OUT"));
    let root = PathBuf::from(std::env::var_os("TESSERA_MPS_ROOT").expect("TESSERA_MPS_ROOT"));
    let dir = tempfile::tempdir().unwrap();
    let plugin_dir = dir.path().join("plugins");
    std::fs::create_dir(&plugin_dir).unwrap();
    let config = Config {
        nvml_lib: "libnvidia-ml.so.1".into(),
        plugin_dir: plugin_dir.clone(),
        socket_name: "tessera-gpu.sock".into(),
        kubelet_socket: plugin_dir.join("kubelet.sock"),
        pod_resources_socket: None,
        node_name: NODE.into(),
        slots_per_gpu: 10,
        recover_after: Duration::from_secs(300),
        health_check_every: Duration::from_secs(10),
        reconcile_every: Duration::from_secs(3600),
        heartbeat_every: Duration::from_secs(3600),
        inventory_min_interval: Duration::from_millis(10),
        mps_root: Some(root),
        mps_poll: Duration::from_millis(100),
        mps_status_max_age_secs: 10,
        proc_root: None,
        coexistence_check_every: Duration::from_secs(3600),
    };
    let nvml = NvmlGpus::load(&config.nvml_lib).expect("the real NVML loads");
    let gpu = nvml.discover().expect("a GPU")[0].clone();
    println!("GPU {} {} {} MiB", gpu.uuid, gpu.model, gpu.memory_mib);
    let mut kubelet = FakeKubelet::start(&config.kubelet_socket, &plugin_dir);
    let pods = Arc::new(MemoryPods::default());
    let mut registry = prometheus_client::registry::Registry::default();
    let plugin = Arc::new(Plugin::new(
        config,
        Arc::new(nvml),
        pods.clone(),
        pods.clone(),
        Metrics::new(&mut registry),
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runner = Arc::clone(&plugin);
    let task = tokio::spawn(async move { runner.run(stopped).await.unwrap() });
    let registration = kubelet.next_registration().await;
    let socket = plugin_dir.join(&registration.endpoint);
    let mut client = DevicePluginClient::new(unix_channel(&socket).await.unwrap());
    // The GPU's slots are Unhealthy until the plugin has read a fresh daemon status.
    let mut stream = client.list_and_watch(Empty {}).await.unwrap().into_inner();
    let slots = tokio::time::timeout(WAIT, async {
        loop {
            let update = next(&mut stream).await;
            let healthy: Vec<String> = update
                .devices
                .iter()
                .filter(|d| d.health == "Healthy")
                .map(|d| d.id.clone())
                .collect();
            if !healthy.is_empty() {
                return healthy;
            }
        }
    })
    .await
    .expect("the MPS daemon's status makes the GPU's slots healthy");
    let mut results = Vec::new();
    for (i, (name, mem_mib, core_milli)) in SHARES.iter().enumerate() {
        let bind_time = format!("2026-12-04T00:00:0{i}Z");
        let mem_mib = if *mem_mib == 0 {
            gpu.memory_mib
        } else {
            *mem_mib
        };
        let pod = allocating_pod(
            name,
            &bind_time,
            std::slice::from_ref(&gpu.uuid),
            mem_mib,
            *core_milli,
        );
        pods.set(vec![pod]);
        let response = client
            .allocate(AllocateRequest {
                container_requests: vec![ContainerAllocateRequest {
                    devices_ids: vec![slots[i].clone()],
                }],
            })
            .await
            .unwrap()
            .into_inner();
        let c = &response.container_responses[0];
        let mounts: Vec<serde_json::Value> = c
            .mounts
            .iter()
            .map(|m| serde_json::json!({"hostPath": m.host_path, "containerPath": m.container_path, "readOnly": m.read_only}))
            .collect();
        results.push(serde_json::json!({"name": name, "memMib": mem_mib, "coreMilli": core_milli, "envs": c.envs, "mounts": mounts}));
    }
    std::fs::write(&out, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    println!("{}", serde_json::to_string_pretty(&results).unwrap());
    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
}
