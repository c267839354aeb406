//! `tessera webhook --profiles FILE --kubeconfig K` against a real cluster
//! (`TESSERA_E2E_KUBECONFIG`; skipped, saying so, when unset): with its profiles from a file the
//! webhook still keeps each identity-managed StatefulSet's peer list in step with its replicas.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use tessera_tests::cluster::Harness;
use tessera_tests::e2e;

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_serving_a_profiles_file_keeps_peer_lists() {
    let Some(kubeconfig) = e2e::kubeconfig("a_webhook_serving_a_profiles_file_keeps_peer_lists")
    else {
        return;
    };
    let h = Harness::start_with(&kubeconfig, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let webhook = support::file_mode_webhook(
        dir.path(),
        &[
            "--log-level".as_ref(),
            "info".as_ref(),
            "--kubeconfig".as_ref(),
            kubeconfig.as_os_str(),
        ],
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
            let log = std::fs::read_to_string(&webhook.log).unwrap_or_default();
            panic!("{e}\nwebhook log:\n{log}")
        });
        // One stable name per member, and one peer entry per member (an entry names its host
        // twice: quorum and client address).
        let listed = hosts.get("hosts").map(|h| h.lines().count());
        assert_eq!(listed, Some(replicas), "{hosts:?}");
        let entries = hosts.get("peers").map(|p| p.matches("server.").count());
        assert_eq!(entries, Some(replicas), "{hosts:?}");
        println!(
            "replicas {replicas}: {peers} lists {replicas} hosts ({:.1?} since the StatefulSet was created)",
            start.elapsed()
        );
    }
}
