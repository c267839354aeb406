//! A kubelet restart: it deletes every socket in the device plugin directory (ours included) and
//! re-creates `kubelet.sock`; the plugin serves again and re-registers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // helpers outside #[test] too

mod device_plugin_support;

use device_plugin_support::*;

#[tokio::test]
async fn plugin_re_registers_and_serves_again_after_the_kubelet_restarts() {
    let mut running = Running::two_gpus().await;
    let mut before = running.watch().await;
    next(&mut before).await;

    running.kubelet.restart();
    let again = running.kubelet.next_registration().await;
    assert_eq!(again.resource_name, "tessera.dev/gpu");
    assert_eq!(again.endpoint, running.registration.endpoint);

    // The old stream ended with its server; the new socket serves the full device list.
    let ended = tokio::time::timeout(WAIT, before.message())
        .await
        .expect("old stream ends");
    assert!(
        !matches!(ended, Ok(Some(_))),
        "old stream should end, got {ended:?}"
    );
    let mut after = running.watch().await;
    assert_eq!(next(&mut after).await.devices.len(), 8);
    assert!(
        running
            .metrics_text()
            .contains("tessera_device_plugin_registrations_total 2")
    );
    running.stop().await;
}
