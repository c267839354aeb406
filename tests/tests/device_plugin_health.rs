//! XID health through the real NVML FFI path: the stand-in raises XIDs, the plugin's
//! ListAndWatch stream turns that GPU's slots Unhealthy, and a quiet period brings them back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // helpers outside #[test] too

mod device_plugin_support;

use device_plugin_support::*;

fn unhealthy_gpus(
    update: &tessera_device_plugin::api::v1beta1::ListAndWatchResponse,
) -> Vec<String> {
    let mut gpus: Vec<String> = update
        .devices
        .iter()
        .filter(|d| d.health == "Unhealthy")
        .filter_map(|d| d.id.split("::").next().map(String::from))
        .collect();
    gpus.dedup();
    gpus
}

#[tokio::test]
async fn critical_xid_marks_only_that_gpus_slots_unhealthy_then_they_recover() {
    let running = Running::two_gpus().await;
    let mut stream = running.watch().await;
    assert!(unhealthy_gpus(&next(&mut stream).await).is_empty());

    running.node.raise_xid(1, 79); // GPU fallen off the bus
    let update = next(&mut stream).await;
    assert_eq!(unhealthy_gpus(&update), vec![uuid(1)]);
    assert_eq!(update.devices.len(), 8, "unhealthy slots stay listed");

    // recover_after is 500 ms in the test config; the next update is the recovery.
    let update = next(&mut stream).await;
    assert!(unhealthy_gpus(&update).is_empty());
    running.stop().await;
}

#[tokio::test]
async fn application_xids_leave_the_gpu_healthy() {
    let running = Running::two_gpus().await;
    let mut stream = running.watch().await;
    next(&mut stream).await;
    for xid in [13, 31, 43, 45, 68] {
        running.node.raise_xid(0, xid);
    }
    running.node.raise_xid(1, 48); // double-bit ECC error: critical
    // Had any application XID changed GPU 0, that update would come first.
    let update = next(&mut stream).await;
    assert_eq!(unhealthy_gpus(&update), vec![uuid(1)]);
    let text = running.metrics_text();
    let gpu0 = uuid(0);
    assert!(
        text.contains(&format!(
            "tessera_device_plugin_xid_events_total{{node=\"{NODE}\",gpu=\"{gpu0}\",critical=\"false\"}} 5"
        )),
        "{text}"
    );
    running.stop().await;
}

#[tokio::test]
async fn a_gpu_without_xid_events_does_not_stop_health_for_the_others() {
    let node = Node::new(&format!(
        "{}gpu {}|NVIDIA A100-SXM4-40GB|40960|0|8.0|0|0|0\n",
        gpu_line(&uuid(0), "NVIDIA A100-SXM4-40GB", 40960),
        uuid(1)
    ));
    let config = node.config();
    let running = Running::start(node, config).await;
    let mut stream = running.watch().await;
    next(&mut stream).await;
    running.node.raise_xid(0, 79);
    assert_eq!(unhealthy_gpus(&next(&mut stream).await), vec![uuid(0)]);
    running.stop().await;
}

#[tokio::test]
async fn a_gpu_nvml_stops_answering_for_turns_unhealthy_and_recovers_once_it_answers_again() {
    let running = Running::two_gpus().await;
    let mut stream = running.watch().await;
    next(&mut stream).await;
    running.node.set_lost(0, true);
    assert_eq!(unhealthy_gpus(&next(&mut stream).await), vec![uuid(0)]);
    // Failed checks keep restarting the quiet period; the GPU returns only after it answers again.
    running.node.set_lost(0, false);
    assert!(unhealthy_gpus(&next(&mut stream).await).is_empty());
    running.stop().await;
}
