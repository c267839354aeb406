//! NVML discovery through nvml-wrapper and the stand-in library, and the plugin's behaviour when
//! NVML or GPUs are missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // helpers outside #[test] too

mod device_plugin_support;

use std::sync::Arc;

use device_plugin_support::*;
use tessera_core::annotations::decode_inventory;
use tessera_device_plugin::Plugin;
use tessera_device_plugin::metrics::Metrics;
use tessera_device_plugin::nvml::{Gpus, NvmlGpus};
use tessera_device_plugin::pods::MemoryPods;

#[test]
fn discovery_reports_index_uuid_model_memory_mig_and_mps() {
    let node = Node::new(&format!(
        "{}gpu {}|NVIDIA A100-SXM4-80GB|81920|1|8.0\ngpu {}|Tesla P100-PCIE-16GB|16384|0|6.0\n",
        gpu_line(&uuid(0), "NVIDIA H100 80GB HBM3", 81559),
        uuid(1),
        uuid(2)
    ));
    let gpus = NvmlGpus::load(&node.lib()).unwrap().discover().unwrap();
    let got: Vec<_> = gpus
        .iter()
        .map(|g| {
            (
                g.index,
                g.uuid.as_str(),
                g.model.as_str(),
                g.memory_mib,
                g.mig,
                g.mps,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                0,
                uuid(0).as_str(),
                "NVIDIA H100 80GB HBM3",
                81559,
                false,
                true
            ),
            // MIG on: MPS limits do not apply.
            (
                1,
                uuid(1).as_str(),
                "NVIDIA A100-SXM4-80GB",
                81920,
                true,
                false
            ),
            // Pascal: no MPS limits (they need Volta or newer).
            (
                2,
                uuid(2).as_str(),
                "Tesla P100-PCIE-16GB",
                16384,
                false,
                false
            ),
        ]
    );
    assert!(gpus.iter().all(|g| g.healthy));
}

#[test]
fn usage_reports_memory_and_utilisation() {
    let node = Node::two_gpus();
    let usage = NvmlGpus::load(&node.lib()).unwrap().usage();
    assert_eq!(usage.len(), 2);
    assert_eq!(usage[0].total_bytes, 40960 * 1024 * 1024);
    assert_eq!(usage[0].used_bytes, 1024 * 1024 * 1024);
    assert_eq!(usage[0].util_percent, 30);
}

#[test]
fn a_missing_library_gets_one_message_naming_it_and_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("libnvidia-ml.so.1");
    let Err(err) = NvmlGpus::load(&lib) else {
        panic!("loading a missing library succeeded")
    };
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "NVML not available from {:?}",
            lib.display().to_string()
        )),
        "{msg}"
    );
    assert!(msg.contains("--nvml-lib"), "{msg}");
    assert!(
        msg.ends_with("This node will offer no tessera.dev/gpu"),
        "{msg}"
    );
}

#[test]
fn a_library_without_a_driver_is_reported_like_a_missing_one() {
    // The stand-in without its config behaves like NVML on a node without the kernel driver.
    let node = Node::two_gpus();
    std::fs::remove_file(node.dir.path().join("nvml-standin.conf")).unwrap();
    let Err(err) = NvmlGpus::load(&node.lib()) else {
        panic!("init without a driver succeeded")
    };
    assert!(err.to_string().contains("NVML not available"), "{err}");
}

#[tokio::test]
async fn without_gpus_the_plugin_does_not_register_and_publishes_an_empty_inventory() {
    let node = Node::new("# no GPUs\n");
    let config = node.config();
    let mut kubelet = FakeKubelet::start(&config.kubelet_socket, &config.plugin_dir);
    let gpus = Arc::new(NvmlGpus::load(&node.lib()).unwrap());
    let pods = Arc::new(MemoryPods::default());
    let mut registry = prometheus_client::registry::Registry::default();
    let plugin = Plugin::new(
        config,
        gpus,
        pods.clone(),
        pods.clone(),
        Metrics::new(&mut registry),
    );
    assert_eq!(
        plugin.unavailable().unwrap().to_string(),
        format!(
            "NVML from {:?} reports no GPU; this node will offer no tessera.dev/gpu",
            node.lib().display().to_string()
        )
    );
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut writes = pods.writes();
    let run = tokio::spawn(async move { plugin.run(rx).await });
    tokio::time::timeout(WAIT, writes.wait_for(|n| *n >= 1))
        .await
        .unwrap()
        .unwrap();
    let (inventory, heartbeat) = pods.inventory_writes()[0].clone();
    assert!(decode_inventory(&inventory).unwrap().gpus.is_empty());
    assert!(heartbeat.parse::<jiff_like::Stamp>().is_ok(), "{heartbeat}");
    assert_eq!(kubelet.pending_registrations(), 0);
    assert!(!node.plugin_dir().join("tessera-gpu.sock").exists());
    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// RFC 3339 check without another dependency: `YYYY-MM-DDTHH:MM:SS…Z`.
mod jiff_like {
    pub struct Stamp;
    impl std::str::FromStr for Stamp {
        type Err = ();
        fn from_str(s: &str) -> Result<Self, ()> {
            let b = s.as_bytes();
            let ok = b.len() >= 20
                && b[4] == b'-'
                && b[7] == b'-'
                && b[10] == b'T'
                && b[13] == b':'
                && s.ends_with('Z');
            if ok { Ok(Stamp) } else { Err(()) }
        }
    }
}

#[test]
fn processes_come_from_both_lists_once_each_with_sm_samples() {
    let node = Node::two_gpus();
    std::fs::write(
        node.dir.path().join("nvml-standin.procs"),
        "0 10 1024 30 c\n0 11 2048 - m\n0 12 4096 7 cm\n1 20 512 - c\n",
    )
    .unwrap();
    std::fs::write(node.dir.path().join("nvml-standin.nosm"), "1\n").unwrap();
    let gpus = NvmlGpus::load(&node.lib()).unwrap().processes();
    assert_eq!(gpus.len(), 2, "{gpus:?}");
    let pids: Vec<_> = gpus[0]
        .processes
        .iter()
        .map(|p| (p.pid, p.used_bytes))
        .collect();
    assert_eq!(
        pids,
        vec![(10, Some(1024)), (11, Some(2048)), (12, Some(4096))]
    );
    assert_eq!(
        gpus[0].sm_percent,
        Some([(10, 30), (12, 7)].into_iter().collect())
    );
    // GPU 1 does not sample per process: no figures rather than zeros.
    assert_eq!(gpus[1].sm_percent, None);
    assert_eq!(gpus[1].processes.len(), 1);
}

#[test]
fn a_gpu_without_processes_has_an_empty_list_and_idle_samples() {
    let node = Node::two_gpus();
    let gpus = NvmlGpus::load(&node.lib()).unwrap().processes();
    assert_eq!(gpus.len(), 2, "{gpus:?}");
    assert!(gpus[0].processes.is_empty());
    assert_eq!(gpus[0].sm_percent, Some(Default::default()));
}
