//! Init containers and native sidecars through the device plugin over its real unix socket:
//! the assignment the extender's own placement writes for a pod with a GPU init container, a
//! GPU sidecar and a GPU app container, then the kubelet's Allocate calls in its order (init
//! containers first; the app container handed the exited init container's slot, as the
//! kubelet's device manager reuses it). Each container gets its own share.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod device_plugin_support;

use device_plugin_support::*;
use tessera_core::annotations::encode_assignment;
use tessera_core::fit::{self, GpuChoice};
use tessera_core::keys;
use tessera_core::ledger::{HostCapacity, NodeLedger, SharingPolicy};
use tessera_core::request::{self, RequestContext};
use tessera_core::testing::{PodBuilder, gpus};
use tessera_device_plugin::api::v1beta1::{AllocateRequest, ContainerAllocateRequest};

fn slot(uuid: &str, n: u32) -> String {
    format!("{uuid}::{n}")
}

/// The pod, annotated with the assignment core places for it on the stand-in's two GPUs.
fn bound_pod() -> (
    k8s_openapi::api::core::v1::Pod,
    tessera_core::annotations::Assignment,
) {
    let share = |mem: &'static str, core: &'static str| {
        [
            (keys::RESOURCE_GPU_MEM, mem),
            (keys::RESOURCE_GPU_CORE, core),
        ]
    };
    let spec = PodBuilder::new("ml", "p")
        .sidecar("agent", &share("2048", "10"))
        .init_container("warm", &share("30000", "60"))
        .container("main", &share("20000", "30"));
    let mut inventory = gpus(NODE, 2, "NVIDIA A100-SXM4-40GB", 40960);
    for (i, g) in inventory.gpus.iter_mut().enumerate() {
        g.uuid = uuid(i as u32);
    }
    let node = NodeLedger::new(
        NODE,
        None,
        &inventory,
        HostCapacity::untracked(),
        4,
        SharingPolicy::IsolatedOnly,
    );
    let req = request::pod_request(&spec.clone().build(), RequestContext::default()).unwrap();
    let placement = fit::place(&node, &req, GpuChoice::BestFit).unwrap();
    let assignment = node.to_assignment(&placement);
    let pod = spec
        .annotation(
            keys::ANNOTATION_GPU_ASSIGNMENT,
            &encode_assignment(&assignment),
        )
        .annotation(keys::ANNOTATION_BIND_PHASE, keys::BIND_PHASE_ALLOCATING)
        .annotation(keys::ANNOTATION_BIND_TIME, "2026-01-01T00:00:00Z")
        .build();
    (pod, assignment)
}

#[tokio::test]
async fn init_containers_and_sidecars_are_allocated_their_own_shares() {
    let running = Running::two_gpus().await;
    let (pod, assignment) = bound_pod();
    let gpu_of = |name: &str| {
        let c = assignment.containers.iter().find(|c| c.container == name);
        c.unwrap_or_else(|| panic!("{name} not in the assignment"))
            .gpus[0]
            .uuid
            .clone()
    };
    running.pods.set(vec![pod]);
    let warm_slot = slot(&gpu_of("warm"), 0);
    // Kubelet order: init containers in spec order (agent, then warm... here the sidecar is
    // first in the spec), then the app container on the slot warm left behind.
    let calls = [
        ("agent", slot(&gpu_of("agent"), 1), "2048M", "10"),
        ("warm", warm_slot.clone(), "30000M", "60"),
        ("main", warm_slot, "20000M", "30"),
    ];
    let mut client = running.client().await;
    for (container, id, mem, core) in calls {
        assert_ne!(
            annotation(&running.pods, "p", keys::ANNOTATION_BIND_PHASE).as_deref(),
            Some(keys::BIND_PHASE_ALLOCATED),
            "allocated before {container} was served"
        );
        let response = client
            .allocate(AllocateRequest {
                container_requests: vec![ContainerAllocateRequest {
                    devices_ids: vec![id],
                }],
            })
            .await
            .unwrap_or_else(|e| panic!("{container}: {e}"))
            .into_inner();
        let envs = &response.container_responses[0].envs;
        assert_eq!(envs["TESSERA_ALLOCATED_FOR"], format!("ml/p/{container}"));
        assert_eq!(envs["NVIDIA_VISIBLE_DEVICES"], gpu_of(container));
        assert_eq!(envs["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"], format!("0={mem}"));
        assert_eq!(envs["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"], core);
    }
    assert_eq!(
        annotation(&running.pods, "p", keys::ANNOTATION_BIND_PHASE).as_deref(),
        Some(keys::BIND_PHASE_ALLOCATED)
    );
    running.stop().await;
}
