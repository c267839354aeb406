//! `tessera webhook --profiles FILE --kubeconfig K` against a real cluster
//! (`TESSERA_E2E_KUBECONFIG`; skipped, saying so, when unset): with its profiles from a file the
//! webhook still keeps each identity-managed StatefulSet's peer list in step with its replicas.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use tessera_tests::cluster::Harness;
use tessera_tests::e2e;
use tessera_tests::process::{free_addr, spawn_logged};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_serving_a_profiles_file_keeps_peer_lists() {
    let Some(kubeconfig) = e2e::kubeconfig("a_webhook_serving_a_profiles_file_keeps_peer_lists")
    else {
        return;
    };
    let h = Harness::start_with(&kubeconfig, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    support::serving_files(dir.path());
    let profiles =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/profiles/zookeeper.yaml");
    let listen = free_addr().to_string();
    let log = dir.path().join("webhook.log");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let _webhook = spawn_logged(
        Path::new(env!("CARGO_BIN_EXE_tessera")),
        [
            "--log-level".as_ref(),
            "info".as_ref(),
            "webhook".as_ref(),
            "--listen".as_ref(),
            listen.as_ref(),
            "--tls-cert".as_ref(),
            cert.as_os_str(),
            "--tls-key".as_ref(),
            key.as_os_str(),
            "--profiles".as_ref(),
            profiles.as_os_str(),
            "--kubeconfig".as_ref(),
            kubeconfig.as_os_str(),
        ],
        &log,
    );
    let name = e2e::unique("zk");
    let sts = e2e::zookeeper_statefulset(&name);
    let statefulsets: Api<StatefulSet> = Api::namespaced(h.client.clone(), &h.ns);
    statefulsets
        .create(&PostParams::default(), &sts)
        .await
        .unwrap();
    let configmaps: Api<ConfigMap> = Api::namespaced(h.client.clone(), &h.ns);
    let peers = format!("{name}-peers");
    let start = Instant::now();
    for replicas in [3, 5] {
        if replicas != 3 {
            let scale = serde_json::json!({"spec": {"replicas": replicas}});
            statefulsets
                .patch(&name, &PatchParams::default(), &Patch::Merge(&scale))
                .await
                .unwrap();
        }
        let hosts = e2e::wait_for("the peers ConfigMap to follow the replicas", LIMIT, || {
            let configmaps = configmaps.clone();
            let peers = peers.clone();
            async move {
                let data = configmaps.get_opt(&peers).await.ok()??.data?;
                (data.get("replicas")? == &replicas.to_string()).then_some(data)
            }
        })
        .await
        .unwrap_or_else(|e| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("{e}\nwebhook log:\n{log}")
        });
        let listed = hosts.values().map(|v| v.matches(".zk-hs.").count()).max();
        assert_eq!(listed, Some(replicas), "{hosts:?}");
        println!(
            "replicas {replicas}: {peers} lists {replicas} hosts ({:.1?} since the StatefulSet was created)",
            start.elapsed()
        );
    }
}
