//! The real kube-scheduler reaching the real `tessera extender` over mutual TLS, with the
//! certificates the extender keeps for itself (`--self-managed-certs`) and the shipped
//! `tlsConfig`: GPU shares are placed; a client without the scheduler's certificate is refused;
//! a renewal of both pairs in the Secret is taken by both sides with no bind lost. Runs against
//! the cluster in `TESSERA_E2E_KUBECONFIG` with the kube-scheduler in
//! `TESSERA_E2E_KUBE_SCHEDULER`; skipped, saying so, when either is unset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use tessera_core::keys;
use tessera_extender::mtls::{CA_NAME, CLIENT_NAME};
use tessera_serve::certs::{issue_client, issue_serving};
use tessera_tests::cluster::Harness;
use tessera_tests::e2e;
use tessera_tests::process::{free_addr, start_extender_mtls};
use tessera_tests::scheduler::{
    project_client_files, scheduler_config_mtls, secret_field, start_scheduler,
};
use tessera_tests::tls_client::{client, request};

const SECRET: &str = "tessera-extender-tls";

async fn bound(h: &Harness, want: usize, logs: &dyn Fn() -> String) {
    let pods = h.pods();
    let got = e2e::wait_for(
        &format!("kube-scheduler to bind {want} pods"),
        Duration::from_secs(90),
        || {
            let pods = pods.clone();
            async move {
                let list = pods.list(&Default::default()).await.ok()?;
                let n = list
                    .items
                    .iter()
                    .filter(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_some()))
                    .count();
                (n >= want).then_some(())
            }
        },
    )
    .await;
    if let Err(e) = got {
        panic!("{e}\n{}", logs());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_scheduler_binds_over_mutual_tls_and_nobody_else_may() {
    let test = "extender_mutual_tls";
    let (Some(kubeconfig), Some(binary)) = (e2e::kubeconfig(test), e2e::kube_scheduler(test))
    else {
        return;
    };
    let h = Harness::start(&kubeconfig).await;
    let dir = tempfile::tempdir().unwrap();
    let (ext_dir, client_dir) = (dir.path().join("extender"), dir.path().join("client"));
    std::fs::create_dir_all(&ext_dir).unwrap();
    std::fs::create_dir_all(&client_dir).unwrap();
    let addr = free_addr();
    let tessera = Path::new(env!("CARGO_BIN_EXE_tessera"));
    let cert = (h.ns.as_str(), SECRET);
    let _extender = start_extender_mtls(tessera, addr, &h.scheduler, &h.kubeconfig, cert, &ext_dir);
    let sched_log = dir.path().join("kube-scheduler.log");
    let logs = || {
        format!(
            "--- extender ---\n{}\n--- kube-scheduler ---\n{}",
            std::fs::read_to_string(ext_dir.join("extender.log")).unwrap_or_default(),
            std::fs::read_to_string(&sched_log).unwrap_or_default()
        )
    };

    // The extender creates the Secret and serves from it.
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns);
    let secret = e2e::wait_for("the extender's Secret", Duration::from_secs(30), || {
        let secrets = secrets.clone();
        async move { secrets.get_opt(SECRET).await.ok().flatten() }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    project_client_files(&secret, &client_dir);
    let ca = secret_field(&secret, "ca.crt");
    let anonymous = client(&ca, None);
    let ready = e2e::wait_for("the extender's /readyz", Duration::from_secs(30), || {
        let anonymous = anonymous.clone();
        async move {
            let (status, _) = request(addr, anonymous, "GET", "/readyz", "").await.ok()?;
            (status == 200).then_some(())
        }
    })
    .await;
    if let Err(e) = ready {
        panic!("{e}\n{}", logs());
    }

    let config = dir.path().join("scheduler-config.yaml");
    let text = scheduler_config_mtls(&kubeconfig, addr, &h.scheduler, &client_dir);
    std::fs::write(&config, text).unwrap();
    let _scheduler = start_scheduler(&binary, &config, &sched_log);
    let share = [
        (keys::RESOURCE_GPU, "1"),
        (keys::RESOURCE_GPU_MEM, "4000"),
        (keys::RESOURCE_GPU_CORE, "20"),
    ];
    for i in 0..2 {
        h.create_pod(&format!("share-{i}"), &share, &[]).await;
    }
    bound(&h, 2, &logs).await;

    // Someone on the network who knows a pending pod: TLS, but no client certificate.
    let pending = h.create_pod("share-nobody-binds", &share, &[]).await;
    let bind = serde_json::json!({
        "PodName": "share-nobody-binds",
        "PodNamespace": h.ns,
        "PodUID": pending.metadata.uid,
        "Node": h.nodes[0],
    });
    let (status, body) = request(addr, anonymous.clone(), "POST", "/bind", &bind.to_string())
        .await
        .unwrap();
    assert_eq!(status, 401, "{body}");

    // Renewal: both pairs re-issued by the same CA, written to the Secret; the extender rewrites
    // and reloads its files, the scheduler's projected files change under it.
    let ca_key = secret_field(&secret, "ca.key");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let names = vec!["127.0.0.1".to_string()];
    let (serving_cert, serving_key) = issue_serving(CA_NAME, &ca_key, names, now).unwrap();
    let (client_cert, client_key) = issue_client(CA_NAME, &ca_key, CLIENT_NAME, now).unwrap();
    let mut renewed = secrets.get(SECRET).await.unwrap();
    let data = renewed.data.as_mut().unwrap();
    for (k, v) in [
        ("tls.crt", &serving_cert),
        ("tls.key", &serving_key),
        ("client.crt", &client_cert),
        ("client.key", &client_key),
    ] {
        data.insert(k.into(), ByteString(v.as_bytes().to_vec()));
    }
    let renewed = secrets
        .replace(SECRET, &PostParams::default(), &renewed)
        .await
        .unwrap();
    e2e::wait_for(
        "the extender to serve the renewed pair",
        Duration::from_secs(30),
        || {
            let file = ext_dir.join("tls.crt");
            let want = serving_cert.clone();
            async move { (std::fs::read_to_string(file).ok()? == want).then_some(()) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    project_client_files(&renewed, &client_dir);
    for i in 2..4 {
        h.create_pod(&format!("share-{i}"), &share, &[]).await;
    }
    // share-nobody-binds is scheduled by kube-scheduler too: five pods in all.
    bound(&h, 5, &logs).await;
    // The metrics say which build runs and how long its serving certificate has left.
    let (_, metrics) = request(addr, anonymous.clone(), "GET", "/metrics", "")
        .await
        .unwrap();
    assert!(
        metrics.contains("tessera_build_info{") && metrics.contains("component=\"extender\""),
        "{metrics}"
    );
    let left: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("tessera_extender_tls_cert_expiry_seconds{certificate=\"serving\"} ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no serving certificate expiry in {metrics}"));
    assert!(
        left > 300.0 * 86400.0,
        "{left} s left on a fresh certificate"
    );
    let renewed_client = client(&ca, Some((&client_cert, &client_key)));
    let (status, _) = request(addr, renewed_client, "GET", "/readyz", "")
        .await
        .unwrap();
    assert_eq!(status, 200);
}
