//! Running the real kube-scheduler with the shipped `tessera-scheduler` configuration
//! (manifests/scheduler/scheduler-config.yaml), pointed at a test cluster and extender.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use serde_yaml_ng::Value;

use crate::e2e::KillOnDrop;

/// The shipped configuration, pointed at this cluster and extender, for this test's pods.
pub fn scheduler_config(kubeconfig: &Path, extender: SocketAddr, scheduler: &str) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/scheduler/scheduler-config.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut config: Value = serde_yaml_ng::from_str(&text).unwrap();
    config["clientConnection"]["kubeconfig"] = Value::from(kubeconfig.display().to_string());
    // One scheduler per test run: no lease to win.
    config["leaderElection"]["leaderElect"] = Value::from(false);
    config["profiles"][0]["schedulerName"] = Value::from(scheduler);
    config["extenders"][0]["urlPrefix"] = Value::from(format!("http://{extender}"));
    serde_yaml_ng::to_string(&config).unwrap()
}

/// kube-scheduler running with `config`; its log goes to `log`.
pub fn start_scheduler(binary: &Path, config: &Path, log: &Path) -> KillOnDrop {
    let log = std::fs::File::create(log).unwrap();
    let child = std::process::Command::new(binary)
        .arg(format!("--config={}", config.display()))
        .arg("--secure-port=0")
        .arg("--v=2")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    KillOnDrop(child)
}
