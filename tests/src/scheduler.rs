//! Running the real kube-scheduler with the shipped `tessera-scheduler` configuration
//! (manifests/scheduler/scheduler-config.yaml), pointed at a test cluster and extender.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use k8s_openapi::api::core::v1::Secret;
use serde_yaml_ng::Value;

use crate::e2e::KillOnDrop;

/// The shipped configuration, pointed at this cluster and extender, for this test's pods.
pub fn scheduler_config(kubeconfig: &Path, extender: SocketAddr, scheduler: &str) -> String {
    let mut config: Value = serde_yaml_ng::from_str(&shipped_text()).unwrap();
    config["clientConnection"]["kubeconfig"] = Value::from(kubeconfig.display().to_string());
    // One scheduler per test run: no lease to win.
    config["leaderElection"]["leaderElect"] = Value::from(false);
    config["profiles"][0]["schedulerName"] = Value::from(scheduler);
    config["extenders"][0]["urlPrefix"] = Value::from(format!("http://{extender}"));
    // A plain-HTTP extender: no client certificate to present.
    config["extenders"][0]["enableHTTPS"] = Value::from(false);
    if let Some(ext) = config["extenders"][0].as_mapping_mut() {
        ext.remove("tlsConfig");
    }
    serde_yaml_ng::to_string(&config).unwrap()
}

/// As [`scheduler_config`], reaching the extender over HTTPS with the shipped `tlsConfig`
/// pointed at `client_dir` (`client.crt`, `client.key`, `ca.crt`, as the Secret is mounted).
pub fn scheduler_config_mtls(
    kubeconfig: &Path,
    extender: SocketAddr,
    scheduler: &str,
    client_dir: &Path,
) -> String {
    let text = scheduler_config(kubeconfig, extender, scheduler);
    let mut config: Value = serde_yaml_ng::from_str(&text).unwrap();
    let shipped: Value = serde_yaml_ng::from_str(&shipped_text()).unwrap();
    let mut tls = shipped["extenders"][0]["tlsConfig"].clone();
    for (field, file) in [
        ("certFile", "client.crt"),
        ("keyFile", "client.key"),
        ("caFile", "ca.crt"),
    ] {
        assert!(
            tls[field].is_string(),
            "the shipped tlsConfig names {field}"
        );
        tls[field] = Value::from(client_dir.join(file).display().to_string());
    }
    let ext = &mut config["extenders"][0];
    ext["urlPrefix"] = Value::from(format!("https://{extender}"));
    ext["enableHTTPS"] = Value::from(true);
    ext["tlsConfig"] = tls;
    serde_yaml_ng::to_string(&config).unwrap()
}

fn shipped_text() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/scheduler/scheduler-config.yaml"
    );
    std::fs::read_to_string(path).unwrap()
}

/// The text of `key` in `secret`.
pub fn secret_field(secret: &Secret, key: &str) -> String {
    let data = secret.data.as_ref().unwrap();
    String::from_utf8(data[key].0.clone()).unwrap()
}

/// Writes kube-scheduler's files from the extender's Secret into `dir`, as the kubelet projects
/// the mounted items (each replaced whole).
pub fn project_client_files(secret: &Secret, dir: &Path) {
    for key in ["client.crt", "client.key", "ca.crt"] {
        let tmp = dir.join(format!("{key}.tmp"));
        std::fs::write(&tmp, secret_field(secret, key)).unwrap();
        std::fs::rename(&tmp, dir.join(key)).unwrap();
    }
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
