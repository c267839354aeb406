//! The device plugin over its real unix socket, against a fake kubelet and the NVML stand-in:
//! registration, ListAndWatch, GetPreferredAllocation, Allocate, shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // helpers outside #[test] too

mod device_plugin_support;

use device_plugin_support::*;
use tessera_core::keys;
use tessera_device_plugin::api::v1beta1::{
    AllocateRequest, ContainerAllocateRequest, ContainerPreferredAllocationRequest,
    PreferredAllocationRequest,
};

fn slot(gpu: u32, n: u32) -> String {
    format!("{}::{n}", uuid(gpu))
}

fn all_slots() -> Vec<String> {
    (0..2)
        .flat_map(|g| (0..4).map(move |n| slot(g, n)))
        .collect()
}

#[tokio::test]
async fn plugin_serves_before_registering_tessera_gpu_with_preferred_allocation() {
    let running = Running::two_gpus().await;
    // The fake kubelet dialled the plugin back before accepting, as the real one does.
    let r = &running.registration;
    assert_eq!(r.version, "v1beta1");
    assert_eq!(r.endpoint, "tessera-gpu.sock");
    assert_eq!(r.resource_name, keys::RESOURCE_GPU);
    let options = r.options.unwrap();
    assert!(options.get_preferred_allocation_available);
    assert!(!options.pre_start_required);
    running.stop().await;
}

#[tokio::test]
async fn list_and_watch_offers_the_configured_slots_on_every_nvml_gpu() {
    let running = Running::two_gpus().await;
    let mut stream = running.watch().await;
    let first = next(&mut stream).await;
    let want: Vec<(String, String)> = all_slots()
        .into_iter()
        .map(|id| (id, "Healthy".into()))
        .collect();
    assert_eq!(health(&first), want);
    running.stop().await;
}

#[tokio::test]
async fn preferred_allocation_picks_slots_on_the_gpu_the_extender_assigned() {
    let running = Running::two_gpus().await;
    running.pods.set(vec![allocating_pod(
        "train",
        "2026-01-01T00:00:00Z",
        &[uuid(1)],
        4096,
        300,
    )]);
    let response = running
        .client()
        .await
        .get_preferred_allocation(PreferredAllocationRequest {
            container_requests: vec![ContainerPreferredAllocationRequest {
                available_device_i_ds: all_slots(),
                must_include_device_i_ds: vec![],
                allocation_size: 1,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        response.container_responses[0].device_i_ds,
        vec![slot(1, 0)]
    );
    running.stop().await;
}

#[tokio::test]
async fn allocate_gives_the_assigned_gpu_with_its_limits_and_marks_the_pod_allocated() {
    let running = Running::two_gpus().await;
    running.pods.set(vec![allocating_pod(
        "train",
        "2026-01-01T00:00:00Z",
        &[uuid(1)],
        4096,
        300,
    )]);
    let response = running
        .client()
        .await
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec![slot(1, 2)],
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let envs = &response.container_responses[0].envs;
    assert_eq!(envs["NVIDIA_VISIBLE_DEVICES"], uuid(1));
    assert_eq!(envs["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"], "0=4096M");
    assert_eq!(envs["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"], "30");
    assert_eq!(envs["TESSERA_GPU_MEM_LIMIT_MIB"], "4096");
    assert_eq!(envs["TESSERA_GPU_CORE_LIMIT_MILLI"], "300");
    assert_eq!(envs["TESSERA_ALLOCATED_FOR"], "ml/train/main");
    assert_eq!(
        annotation(&running.pods, "train", keys::ANNOTATION_BIND_PHASE).as_deref(),
        Some(keys::BIND_PHASE_ALLOCATED)
    );
    running.stop().await;
}

#[tokio::test]
async fn allocate_with_no_matching_pod_fails_naming_node_request_and_candidates() {
    let running = Running::two_gpus().await;
    // The only allocating pod wants two GPUs; the kubelet asks for one slot.
    running.pods.set(vec![allocating_pod(
        "pair",
        "2026-01-01T00:00:00Z",
        &[uuid(0), uuid(1)],
        1024,
        100,
    )]);
    let status = running
        .client()
        .await
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec![slot(0, 0)],
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    let msg = status.message();
    assert!(msg.contains(&format!("node {NODE}")), "{msg}");
    assert!(msg.contains(&slot(0, 0)), "{msg}");
    assert!(msg.contains("candidates: ml/pair[main=2]"), "{msg}");
    assert!(
        running
            .metrics_text()
            .contains("tessera_device_plugin_allocate_errors_total{reason=\"no_matching_pod\"} 1")
    );
    running.stop().await;
}

#[tokio::test]
async fn allocate_rejects_a_device_id_it_never_advertised() {
    let running = Running::two_gpus().await;
    let status = running
        .client()
        .await
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["nvidia0".into()],
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("\"nvidia0\""),
        "{}",
        status.message()
    );
    running.stop().await;
}

#[tokio::test]
async fn shutdown_removes_the_plugin_socket() {
    let running = Running::two_gpus().await;
    let socket = running.socket();
    assert!(socket.exists());
    running.stop().await;
    assert!(!socket.exists());
}
