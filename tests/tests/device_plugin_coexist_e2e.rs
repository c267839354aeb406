//! End to end against a real apiserver: the device plugin's node source reads `nvidia.com/gpu`
//! from a Node's status, so the coexistence rule sees what NVIDIA's plugin advertises there.
//! The test advertises one `nvidia.com/gpu` on a node through the status subresource (as a
//! device plugin's kubelet would), checks the plugin's read and decision, and removes it again.
//! A node that already advertises the resource is only read, never changed.
//!
//! Needs `TESSERA_E2E_KUBECONFIG` (prints a skip line when unset); `TESSERA_E2E_NODE` picks the
//! node (default: the first one listed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // helpers outside #[test] too

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use tessera_core::plugin::coexist::{self, NVIDIA_GPU};
use tessera_device_plugin::pods::{KubePods, NodeAnnotations};
use tessera_tests::e2e;

const PATH: &str = "/status/capacity/nvidia.com~1gpu";

/// Removes the advertised resource when dropped, pass or fail.
struct Advertised {
    kubeconfig: std::path::PathBuf,
    node: String,
}

impl Drop for Advertised {
    fn drop(&mut self) {
        let node = self.node.clone();
        e2e::cleanup_blocking(self.kubeconfig.clone(), move |client| async move {
            let api: Api<Node> = Api::all(client);
            let remove = serde_json::json!([{ "op": "remove", "path": PATH }]);
            let patch = Patch::Json::<()>(serde_json::from_value(remove).unwrap());
            let _ = api
                .patch_status(&node, &PatchParams::default(), &patch)
                .await;
        });
    }
}

#[tokio::test]
async fn the_plugin_sees_nvidia_gpus_advertised_in_the_node_status() {
    let Some(kubeconfig) =
        e2e::kubeconfig("the_plugin_sees_nvidia_gpus_advertised_in_the_node_status")
    else {
        return;
    };
    let client = e2e::client(&kubeconfig).await.unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    let node = match std::env::var("TESSERA_E2E_NODE")
        .ok()
        .filter(|n| !n.is_empty())
    {
        Some(n) => n,
        None => nodes.list(&Default::default()).await.unwrap().items[0]
            .metadata
            .name
            .clone()
            .unwrap(),
    };
    let plugin = KubePods::start(client.clone(), &node).await;
    let (capacity, allocatable) = plugin.resources().await.unwrap();
    if coexist::conflict(&capacity, &allocatable).is_some() {
        eprintln!("node {node} already advertises an NVIDIA GPU resource: read only");
        return;
    }

    let add = serde_json::json!([{ "op": "add", "path": PATH, "value": "1" }]);
    let patch = Patch::Json::<()>(serde_json::from_value(add).unwrap());
    nodes
        .patch_status(&node, &PatchParams::default(), &patch)
        .await
        .unwrap();
    let guard = Advertised {
        kubeconfig,
        node: node.clone(),
    };
    let (capacity, allocatable) = plugin.resources().await.unwrap();
    let conflict = coexist::conflict(&capacity, &allocatable).expect("a conflict");
    assert_eq!(
        (conflict.resource.as_str(), conflict.quantity.as_str()),
        (NVIDIA_GPU, "1")
    );

    drop(guard);
    let (capacity, allocatable) = plugin.resources().await.unwrap();
    assert_eq!(coexist::conflict(&capacity, &allocatable), None);
}
