//! Coexistence with another GPU device plugin: while the node's status advertises
//! `nvidia.com/gpu` (NVIDIA's plugin is registered there) the plugin offers every slot
//! Unhealthy, publishes its GPUs unhealthy, is not ready with the reason and sets
//! `tessera_device_plugin_conflict`; once the resource is gone it offers the node again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // helpers outside #[test] too

mod device_plugin_support;

use std::collections::BTreeMap;
use std::sync::Arc;

use device_plugin_support::*;
use tessera_core::annotations::decode_inventory;
use tessera_device_plugin::api::v1beta1::ListAndWatchResponse;
use tessera_device_plugin::pods::MemoryPods;

fn resources(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

async fn until_all(stream: &mut tonic::Streaming<ListAndWatchResponse>, health: &str) {
    loop {
        let update = next(stream).await;
        if update.devices.iter().all(|d| d.health == health) {
            return;
        }
    }
}

/// Waits until the last inventory write has every GPU `healthy`.
async fn inventory_until(pods: &MemoryPods, healthy: bool) {
    let mut writes = pods.writes();
    tokio::time::timeout(
        WAIT,
        writes.wait_for(|_| {
            pods.inventory_writes().last().is_some_and(|(text, _)| {
                decode_inventory(text)
                    .unwrap()
                    .gpus
                    .iter()
                    .all(|g| g.healthy == healthy)
            })
        }),
    )
    .await
    .expect("the inventory changed in time")
    .unwrap();
}

#[tokio::test]
async fn a_node_where_nvidias_plugin_advertises_gpus_offers_no_share_until_it_is_gone() {
    let pods = Arc::new(MemoryPods::default());
    pods.set_resources((
        resources(&[("cpu", "8"), ("nvidia.com/gpu", "2")]),
        resources(&[("cpu", "8"), ("nvidia.com/gpu", "2")]),
    ));
    let node = Node::two_gpus();
    let config = node.config();
    let running = Running::start_with(node, config, pods.clone()).await;
    let shared = Arc::clone(running.plugin.shared().unwrap());

    // Checked before registering: the first list the kubelet sees is already all Unhealthy.
    let mut stream = running.watch().await;
    let first = next(&mut stream).await;
    assert!(
        first.devices.iter().all(|d| d.health == "Unhealthy"),
        "{first:?}"
    );
    inventory_until(&pods, false).await;
    let why = shared.readiness().unwrap_err();
    assert!(why.contains("nvidia.com/gpu=2"), "{why}");
    let text = running.metrics_text();
    assert!(
        text.contains("tessera_device_plugin_conflict{resource=\"nvidia.com/gpu\"} 1"),
        "{text}"
    );

    // The operator disables NVIDIA's plugin here; the kubelet drops the resource to zero.
    pods.set_resources((
        resources(&[("cpu", "8"), ("nvidia.com/gpu", "0")]),
        resources(&[("cpu", "8"), ("nvidia.com/gpu", "0")]),
    ));
    until_all(&mut stream, "Healthy").await;
    inventory_until(&pods, true).await;
    assert_eq!(shared.readiness(), Ok("registered with the kubelet"));
    assert!(
        running
            .metrics_text()
            .contains("tessera_device_plugin_conflict{resource=\"nvidia.com/gpu\"} 0")
    );
    running.stop().await;
}

#[tokio::test]
async fn a_node_with_only_tessera_slots_is_served_and_says_so() {
    let pods = Arc::new(MemoryPods::default());
    pods.set_resources((resources(&[("tessera.dev/gpu", "8")]), BTreeMap::new()));
    let node = Node::two_gpus();
    let config = node.config();
    let running = Running::start_with(node, config, pods.clone()).await;
    let mut stream = running.watch().await;
    let first = next(&mut stream).await;
    assert!(first.devices.iter().all(|d| d.health == "Healthy"));
    assert!(
        running
            .metrics_text()
            .contains("tessera_device_plugin_conflict{resource=\"nvidia.com/gpu\"} 0")
    );
    running.stop().await;
}
