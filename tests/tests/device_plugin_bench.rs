//! Latency figures for the device plugin's targets (issue 5), measured end to end over the real
//! unix socket with the NVML stand-in. Ignored by default and never asserted on (timings depend on
//! the machine); run with
//! `cargo test --release -p tessera-tests --test device_plugin_bench -- --ignored --nocapture`.
//!
//! - Allocate with 100 allocating pods in the cache (target p99 < 5 ms).
//! - XID raised in NVML → the GPU's slots Unhealthy in ListAndWatch (target < 1 s). Includes the
//!   stand-in's 5 ms file poll, which a real driver does not have.
//! - Kubelet restart (sockets deleted, new `kubelet.sock`) → Register received (target < 1 s);
//!   dominated by the plugin's 50 ms poll of its own socket.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // helpers outside #[test] too

mod device_plugin_support;

use std::time::{Duration, Instant};

use device_plugin_support::*;
use tessera_device_plugin::api::v1beta1::{AllocateRequest, ContainerAllocateRequest};

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    println!(
        "{what}: n={} p50={:.3} ms p99={:.3} ms max={:.3} ms",
        samples.len(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3
    );
}

fn hundred_pods() -> Vec<k8s_openapi::api::core::v1::Pod> {
    (0..100)
        .map(|i| {
            let stamp = format!("2026-01-01T00:{:02}:{:02}Z", i / 60, i % 60);
            allocating_pod(&format!("p{i:03}"), &stamp, &[uuid(i % 2)], 1024, 100)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn bench_allocate_with_100_pods_in_cache() {
    let running = Running::two_gpus().await;
    let mut client = running.client().await;
    let mut samples = Vec::new();
    for round in 0..20 {
        running.pods.set(hundred_pods());
        // Each round serves 50 of the 100 pods, so the cache always holds 100 pods and at least
        // 50 candidates. Slots repeat across rounds; the record for a slot set is replaced.
        for i in 0..50u32 {
            let slot = format!("{}::{}", uuid(i % 2), (i + round) % 4);
            let started = Instant::now();
            client
                .allocate(AllocateRequest {
                    container_requests: vec![ContainerAllocateRequest {
                        devices_ids: vec![slot],
                    }],
                })
                .await
                .unwrap();
            samples.push(started.elapsed());
        }
    }
    report("Allocate (100 pods in cache, over the socket)", samples);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn bench_xid_to_unhealthy_in_list_and_watch() {
    let node = Node::two_gpus();
    let mut config = node.config();
    config.recover_after = Duration::from_millis(300);
    let running = Running::start(node, config).await;
    let mut stream = running.watch().await;
    next(&mut stream).await;
    let mut samples = Vec::new();
    for i in 0..20 {
        let gpu = i % 2;
        let started = Instant::now();
        running.node.raise_xid(gpu, 79);
        let update = next(&mut stream).await;
        samples.push(started.elapsed());
        assert!(update.devices.iter().any(|d| d.health == "Unhealthy"));
        // Wait for the recovery update before the next round.
        let recovered = next(&mut stream).await;
        assert!(recovered.devices.iter().all(|d| d.health == "Healthy"));
    }
    report("XID -> Unhealthy in ListAndWatch", samples);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn bench_re_registration_after_kubelet_restart() {
    let mut running = Running::two_gpus().await;
    let mut samples = Vec::new();
    for i in 0..20u64 {
        // Restart at varying points of the plugin's 50 ms socket poll, not right after it
        // registered (when its first, immediate check would catch the removal at once).
        tokio::time::sleep(Duration::from_millis(100 + (i * 17) % 50)).await;
        let restarted = running.kubelet.restart();
        running.kubelet.next_registration().await;
        samples.push(restarted.elapsed());
    }
    report("kubelet restart -> Register received", samples);
    running.stop().await;
}
