//! PodResources reconciliation and the node inventory, against a fake PodResources server.
//!
//! The case every other GPU-sharing plugin gets wrong: two pods of the same size pending on one
//! node. `Allocate` cannot know which pod the kubelet admits, so it serves the oldest; when the
//! kubelet was in fact admitting the other one, PodResources shows it and the annotations are
//! corrected to the GPUs each container really got.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // helpers outside #[test] too

mod device_plugin_support;

use device_plugin_support::*;
use tessera_core::annotations::{decode_assignment, decode_inventory};
use tessera_core::keys;
use tessera_device_plugin::api::v1beta1::{
    AllocateRequest, ContainerAllocateRequest, ContainerPreferredAllocationRequest,
    PreferredAllocationRequest,
};
use tessera_device_plugin::podresources::reconcile_once;

fn all_slots() -> Vec<String> {
    (0..2)
        .flat_map(|g| (0..4).map(move |n| format!("{}::{n}", uuid(g))))
        .collect()
}

/// One kubelet admission: GetPreferredAllocation then Allocate, as the kubelet orders them.
async fn admit(running: &Running) -> (String, String) {
    let mut client = running.client().await;
    let preferred = client
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
    let ids = preferred.container_responses[0].device_i_ds.clone();
    let response = client
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: ids.clone(),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    (
        ids[0].clone(),
        response.container_responses[0].envs["NVIDIA_VISIBLE_DEVICES"].clone(),
    )
}

fn assigned_gpu(running: &Running, pod: &str) -> String {
    let text = annotation(&running.pods, pod, keys::ANNOTATION_GPU_ASSIGNMENT).unwrap();
    decode_assignment(&text).unwrap().containers[0].gpus[0]
        .uuid
        .clone()
}

#[tokio::test]
async fn two_same_size_pods_admitted_in_the_other_order_get_corrected_annotations() {
    let running = Running::two_gpus().await;
    let pod_resources = FakePodResources::default();
    pod_resources.serve(&running.node.pod_resources_socket());
    // a is older and assigned GPU 0; b is assigned GPU 1; same size.
    running.pods.set(vec![
        allocating_pod("a", "2026-01-01T00:00:00Z", &[uuid(0)], 8192, 500),
        allocating_pod("b", "2026-01-01T00:00:01Z", &[uuid(1)], 8192, 500),
    ]);

    // The kubelet admits b first; the plugin can only serve the oldest, a's assignment.
    let (slot_for_b, env_for_b) = admit(&running).await;
    let (slot_for_a, env_for_a) = admit(&running).await;
    assert_eq!(
        (env_for_b.as_str(), env_for_a.as_str()),
        (uuid(0).as_str(), uuid(1).as_str())
    );

    // PodResources tells the truth: b holds the GPU 0 slot, a the GPU 1 slot.
    pod_resources.set(&[
        ("a", "main", keys::RESOURCE_GPU, &[slot_for_a]),
        ("b", "main", keys::RESOURCE_GPU, &[slot_for_b]),
        ("other", "main", "example.com/fpga", &["fpga0".to_string()]),
    ]);
    let shared = running.plugin.shared().unwrap();
    let socket = running.node.pod_resources_socket();
    assert_eq!(reconcile_once(shared, &socket).await.unwrap(), 2);
    assert_eq!(assigned_gpu(&running, "a"), uuid(1));
    assert_eq!(assigned_gpu(&running, "b"), uuid(0));
    assert!(
        running
            .metrics_text()
            .contains("tessera_device_plugin_assignment_corrections_total 2")
    );

    // Corrected annotations agree with PodResources: nothing more to do.
    assert_eq!(reconcile_once(shared, &socket).await.unwrap(), 0);
    running.stop().await;
}

#[tokio::test]
async fn pods_served_in_order_need_no_correction() {
    let running = Running::two_gpus().await;
    let pod_resources = FakePodResources::default();
    pod_resources.serve(&running.node.pod_resources_socket());
    running.pods.set(vec![allocating_pod(
        "a",
        "2026-01-01T00:00:00Z",
        &[uuid(1)],
        8192,
        500,
    )]);
    let (slot, _) = admit(&running).await;
    pod_resources.set(&[("a", "main", keys::RESOURCE_GPU, &[slot])]);
    let shared = running.plugin.shared().unwrap();
    assert_eq!(
        reconcile_once(shared, &running.node.pod_resources_socket())
            .await
            .unwrap(),
        0
    );
    assert_eq!(assigned_gpu(&running, "a"), uuid(1));
    running.stop().await;
}

#[tokio::test]
async fn reconciliation_reports_an_unreachable_pod_resources_socket() {
    let running = Running::two_gpus().await;
    let shared = running.plugin.shared().unwrap();
    let err = reconcile_once(shared, &running.node.pod_resources_socket())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("kubelet unavailable: PodResources at"),
        "{err}"
    );
    running.stop().await;
}

#[tokio::test]
async fn inventory_is_published_at_start_and_again_when_a_gpu_turns_unhealthy() {
    let running = Running::two_gpus().await;
    let mut writes = running.pods.writes();
    tokio::time::timeout(WAIT, writes.wait_for(|n| *n >= 1))
        .await
        .unwrap()
        .unwrap();
    let first = decode_inventory(&running.pods.inventory_writes()[0].0).unwrap();
    let summary: Vec<_> = first
        .gpus
        .iter()
        .map(|g| (g.uuid.clone(), g.memory_mib, g.healthy))
        .collect();
    assert_eq!(
        summary,
        vec![(uuid(0), 40960, true), (uuid(1), 40960, true)]
    );

    running.node.raise_xid(0, 79);
    tokio::time::timeout(WAIT, writes.wait_for(|n| *n >= 2))
        .await
        .unwrap()
        .unwrap();
    let second = decode_inventory(&running.pods.inventory_writes()[1].0).unwrap();
    assert!(!second.gpus[0].healthy && second.gpus[1].healthy);
    running.stop().await;
}
