//! The ResourceSlice `tessera dra-plugin` publishes for a node with the NVML stand-in: one
//! shareable device per GPU with its attributes and request policies, tainted while the MPS
//! daemon is not ready, and re-published (with a new pool generation) when that changes.

mod dra_plugin_support;

use dra_plugin_support::{GPU, Node, Running, mps_live};

#[tokio::test]
async fn the_slice_offers_the_gpu_as_shareable_memory_and_compute() {
    let running = Running::start(Node::one_gpu()).await;
    let slice = running.isolated().await;
    assert_eq!(
        slice.metadata.name.as_deref(),
        Some("gpu-node-1-gpu.tessera.dev")
    );
    assert_eq!(slice.spec.driver, "gpu.tessera.dev");
    assert_eq!(slice.spec.node_name.as_deref(), Some("gpu-node-1"));
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Node", "node-uid-1")
    );
    let devices = slice.spec.devices.as_ref().unwrap();
    assert_eq!(devices.len(), 1);
    let d = &devices[0];
    assert_eq!(d.name, "gpu-0");
    assert_eq!(d.allow_multiple_allocations, Some(true));
    assert!(d.taints.is_none());
    let a = d.attributes.as_ref().unwrap();
    assert_eq!(a["uuid"].string.as_deref(), Some(GPU));
    assert_eq!(
        a["productName"].string.as_deref(),
        Some("NVIDIA A100-SXM4-80GB")
    );
    assert_eq!(a["driverVersion"].string.as_deref(), Some("580.95.05"));
    let c = d.capacity.as_ref().unwrap();
    assert_eq!(c["memory"].value.0, (81920u64 << 20).to_string());
    assert_eq!(c["compute"].value.0, "100");
    let json = serde_json::to_value(&slice).unwrap();
    assert_eq!(json["apiVersion"], "resource.k8s.io/v1");
    assert_eq!(json["kind"], "ResourceSlice");
    running.stop().await;
}

#[tokio::test]
async fn the_gpu_is_tainted_while_the_mps_daemon_is_down_and_untainted_when_back() {
    let running = Running::start(Node::one_gpu()).await;
    let live = running.isolated().await;
    running.node.set_mps_ready(false);
    let down = running.slice_where(|s| mps_live(s) == Some(false)).await;
    let taints = down.spec.devices.as_ref().unwrap()[0]
        .taints
        .clone()
        .unwrap();
    assert_eq!(taints[0].key, "gpu.tessera.dev/mps-not-ready");
    assert_eq!(taints[0].effect, "NoSchedule");
    assert!(down.spec.pool.generation > live.spec.pool.generation);
    running.node.set_mps_ready(true);
    let back = running.slice_where(|s| mps_live(s) == Some(true)).await;
    assert!(back.spec.devices.as_ref().unwrap()[0].taints.is_none());
    assert!(back.spec.pool.generation > down.spec.pool.generation);
    running.stop().await;
}
