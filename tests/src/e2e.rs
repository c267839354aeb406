//! Shared by the e2e tests: the cluster they run against (`TESSERA_E2E_KUBECONFIG`, skipped with a
//! line saying so when unset), unique names, and waiting for a condition.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// How long the e2e tests wait for a watch or controller to catch up.
pub const SYNC_LIMIT: Duration = Duration::from_secs(20);

/// Environment variable naming the kubeconfig of the e2e cluster (cluster-admin).
pub const KUBECONFIG_ENV: &str = "TESSERA_E2E_KUBECONFIG";

/// The e2e cluster's kubeconfig, or `None` after printing why the test is skipped.
pub fn kubeconfig(test: &str) -> Option<PathBuf> {
    match std::env::var_os(KUBECONFIG_ENV) {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => {
            // Straight to stderr: the test harness captures `eprintln!` of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "skipping e2e test {test}: {KUBECONFIG_ENV} is not set"
            );
            None
        }
    }
}

/// A client for the cluster in `path`.
pub async fn client(path: &std::path::Path) -> Result<Client, String> {
    let file = Kubeconfig::read_from(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Client::try_from(config).map_err(|e| e.to_string())
}

/// A name no other run or test used: `prefix-<pid><millis><n>` (lowercase, DNS-safe).
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() % 1_000_000);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}{millis}{n}", std::process::id() % 10_000)
}

/// Polls `check` every 100 ms until it yields a value or `limit` passes.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if start.elapsed() > limit {
            return Err(format!("timed out after {limit:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Environment variable naming a kube-scheduler binary for the tests that run the real one.
pub const KUBE_SCHEDULER_ENV: &str = "TESSERA_E2E_KUBE_SCHEDULER";

/// The kube-scheduler binary, or `None` after printing why the test is skipped.
pub fn kube_scheduler(test: &str) -> Option<PathBuf> {
    binary_from_env(test, KUBE_SCHEDULER_ENV)
}

/// Environment variable naming the previous release's `tessera` binary, for the upgrade test
/// (built from the last release's commit: README, "End-to-end tests against a real cluster").
pub const PREVIOUS_RELEASE_ENV: &str = "TESSERA_E2E_PREVIOUS_TESSERA";

/// The previous release's `tessera` binary, or `None` after printing why the test is skipped.
pub fn previous_release(test: &str) -> Option<PathBuf> {
    binary_from_env(test, PREVIOUS_RELEASE_ENV)
}

fn binary_from_env(test: &str, env: &str) -> Option<PathBuf> {
    match std::env::var_os(env) {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "skipping e2e test {test}: {env} is not set"
            );
            None
        }
    }
}

/// Stops `child` as a rollout does (SIGTERM: it drains and exits), waiting up to `limit` before
/// killing it.
pub fn terminate(mut child: KillOnDrop, limit: Duration) {
    // Our own child, not reaped yet: the PID is still its.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    let start = Instant::now();
    while start.elapsed() < limit {
        if matches!(child.0.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Dropped: killed and reaped.
}

/// A child process killed (and reaped) when dropped, pass or fail.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `work` against the cluster in `kubeconfig` to completion, for cleanup from `Drop`: on a
/// thread and runtime of its own with a client of its own, because the test's runtime, which
/// drives the test's clients, is blocked while it drops.
pub fn cleanup_blocking<F, Fut>(kubeconfig: PathBuf, work: F)
where
    F: FnOnce(Client) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let done = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            if let Ok(client) = client(&kubeconfig).await {
                work(client).await;
            }
        });
    });
    let _ = done.join();
}

/// The value of `key` in the environment the test image's program printed at start (`ENV
/// KEY=VALUE` lines, or plain `KEY=VALUE`); a Running pod's log may lag a moment, so this waits
/// up to 10 s for it.
pub async fn container_env(
    pods: &kube::Api<k8s_openapi::api::core::v1::Pod>,
    name: &str,
    key: &str,
) -> Option<String> {
    let prefix = format!("{key}=");
    for _ in 0..100 {
        let logs = pods
            .logs(name, &kube::api::LogParams::default())
            .await
            .unwrap_or_default();
        if logs.contains("sleeping") || logs.contains(&prefix) {
            return logs.lines().find_map(|l| {
                l.trim_start_matches("ENV ")
                    .strip_prefix(&prefix)
                    .map(String::from)
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// A 3-replica StatefulSet `name` whose pods (label `app: zk`) the shipped ZooKeeper profile
/// selects, with headless service `zk-hs`; its image is never pulled (nothing schedules it).
#[allow(clippy::panic)] // a literal that does not decode is a broken test
pub fn zookeeper_statefulset(name: &str) -> k8s_openapi::api::apps::v1::StatefulSet {
    let labels = serde_json::json!({"app": "zk", "e2e": name});
    let image = "registry.example/zookeeper:3.9";
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"replicas": 3, "serviceName": "zk-hs", "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "zk", "image": image}]}}}
    }))
    .unwrap_or_else(|e| panic!("the ZooKeeper StatefulSet does not decode: {e}"))
}

/// Applies the InjectionProfile CRD generated from the Rust type and waits until it is
/// established.
#[allow(clippy::unwrap_used, clippy::expect_used)] // a cluster refusing its own CRD ends the test
pub async fn install_profile_crd(client: &Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Patch, PatchParams};
    use kube::runtime::wait::{await_condition, conditions};
    use kube::{Api, CustomResourceExt};
    use tessera_inject::InjectionProfile;

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("tessera-e2e").force();
    crds.patch(
        InjectionProfile::crd_name(),
        &params,
        &Patch::Apply(&InjectionProfile::crd()),
    )
    .await
    .unwrap();
    let established = await_condition(
        crds,
        InjectionProfile::crd_name(),
        conditions::is_crd_established(),
    );
    tokio::time::timeout(Duration::from_secs(60), established)
        .await
        .expect("the InjectionProfile CRD was not established within 60 s")
        .unwrap();
}

/// An e2e variable, unset when empty.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The real kubelet node the tests run pods on: `TESSERA_E2E_NODE`, else the first Ready node.
#[allow(clippy::expect_used)] // a cluster without a Ready node cannot run these tests
pub async fn ready_node(client: &Client) -> String {
    if let Some(n) = env("TESSERA_E2E_NODE") {
        return n;
    }
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let list = nodes
        .list(&Default::default())
        .await
        .expect("listing nodes");
    list.items
        .iter()
        .find(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .and_then(|n| n.metadata.name.clone())
        .expect("a Ready node")
}

/// The kubelet restart command of `TESSERA_E2E_KUBELET_RESTART`, if set.
pub const KUBELET_RESTART_ENV: &str = "TESSERA_E2E_KUBELET_RESTART";

/// Runs `cmd` (from [`KUBELET_RESTART_ENV`]) with `sh -c`; panics unless it succeeds.
#[allow(clippy::panic)] // a restart that failed leaves nothing to test
pub fn restart_kubelet(cmd: &str) {
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        panic!("{KUBELET_RESTART_ENV}: {cmd} failed");
    }
}
