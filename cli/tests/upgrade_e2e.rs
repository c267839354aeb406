//! The README's upgrade order, from the previous release to this one, on a real cluster with the
//! real kube-scheduler: the previous release places GPU shares (its extender over plain HTTP, as
//! it shipped); the extender is rolled to this release (SIGTERM, then the new one with its own
//! certificates and mutual TLS); then kube-scheduler is rolled to the shipped `tlsConfig`. Pods
//! created between the two steps wait Pending and are placed once the scheduler step is done;
//! nothing placed before is moved or rewritten, and the new extender counts it: the GPUs fill up
//! exactly and one more share stays Pending.
//!
//! Needs `TESSERA_E2E_KUBECONFIG`, `TESSERA_E2E_KUBE_SCHEDULER` and
//! `TESSERA_E2E_PREVIOUS_TESSERA` (the previous release's binary); skipped, saying so, when one
//! is unset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use tessera_core::keys;
use tessera_tests::cluster::{Harness, assigned};
use tessera_tests::e2e;
use tessera_tests::process::{free_addr, start_extender, start_extender_mtls, wait_ready};
use tessera_tests::scheduler::{
    project_client_files, scheduler_config, scheduler_config_mtls, secret_field, start_scheduler,
};
use tessera_tests::tls_client::{client, request};

const SECRET: &str = "tessera-extender-tls";
/// Half of one of the harness's GPUs (15,360 MiB): two shares fill a GPU.
const HALF: [(&str, &str); 3] = [
    (keys::RESOURCE_GPU, "1"),
    (keys::RESOURCE_GPU_MEM, "7680"),
    (keys::RESOURCE_GPU_CORE, "50"),
];

fn node_of(p: &Pod) -> Option<&str> {
    p.spec.as_ref()?.node_name.as_deref()
}

fn assignment_of(p: &Pod) -> Option<String> {
    let a = p.metadata.annotations.as_ref()?;
    a.get(keys::ANNOTATION_GPU_ASSIGNMENT).cloned()
}

/// Name → pod, of the test's namespace.
async fn pods_by_name(h: &Harness) -> BTreeMap<String, Pod> {
    let list = h.pods().list(&Default::default()).await.unwrap();
    list.items
        .into_iter()
        .map(|p| (p.metadata.name.clone().unwrap_or_default(), p))
        .collect()
}

async fn wait_bound(h: &Harness, names: &[String], logs: &dyn Fn() -> String) {
    let got = e2e::wait_for(
        &format!("{names:?} to be bound"),
        Duration::from_secs(90),
        || async {
            let pods = pods_by_name(h).await;
            names
                .iter()
                .all(|n| pods.get(n).and_then(node_of).is_some())
                .then_some(())
        },
    )
    .await;
    if let Err(e) = got {
        panic!("{e}\n{}", logs());
    }
}

/// The message of a `PodScheduled=False` condition: the scheduler tried the pod and could not
/// place it.
fn not_scheduled(p: &Pod) -> Option<String> {
    let conditions = p.status.as_ref()?.conditions.as_ref()?;
    let c = conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    Some(c.message.clone().unwrap_or_default())
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_release_upgrades_in_the_readme_order_with_nothing_lost_or_placed_twice() {
    let test = "upgrade";
    let (Some(kubeconfig), Some(kube_scheduler), Some(previous)) = (
        e2e::kubeconfig(test),
        e2e::kube_scheduler(test),
        e2e::previous_release(test),
    ) else {
        return;
    };
    // Two nodes of two GPUs: eight halves in all.
    let h = Harness::start_with(&kubeconfig, 2, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let (ext_dir, client_dir) = (dir.path().join("extender"), dir.path().join("client"));
    std::fs::create_dir_all(&ext_dir).unwrap();
    std::fs::create_dir_all(&client_dir).unwrap();
    let old_log = dir.path().join("previous-extender.log");
    let (old_sched_log, sched_log) = (
        dir.path().join("previous-kube-scheduler.log"),
        dir.path().join("kube-scheduler.log"),
    );
    let logs = || {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "--- previous extender ---\n{}\n--- extender ---\n{}\n--- kube-scheduler (before) ---\n{}\n--- kube-scheduler ---\n{}",
            read(&old_log),
            read(&ext_dir.join("extender.log")),
            read(&old_sched_log),
            read(&sched_log),
        )
    };

    // The previous release as it shipped: its extender over plain HTTP, kube-scheduler calling it.
    let addr = free_addr();
    let old = start_extender(&previous, addr, &h.scheduler, &kubeconfig, &old_log);
    wait_ready(addr);
    let old_config = dir.path().join("previous-scheduler-config.yaml");
    std::fs::write(
        &old_config,
        scheduler_config(&kubeconfig, addr, &h.scheduler),
    )
    .unwrap();
    let old_scheduler = start_scheduler(&kube_scheduler, &old_config, &old_sched_log);
    let before = names("before", 4);
    for n in &before {
        h.create_pod(n, &HALF, &[]).await;
    }
    wait_bound(&h, &before, &logs).await;
    let placed_before: BTreeMap<String, (String, String)> = pods_by_name(&h)
        .await
        .into_iter()
        .filter(|(n, _)| before.contains(n))
        .map(|(n, p)| {
            let node = node_of(&p).unwrap().to_string();
            (n, (node, assignment_of(&p).unwrap()))
        })
        .collect();

    // Step 3, the extender: the old one drains and exits; this release takes its address with
    // the certificates it keeps for itself and admits only kube-scheduler's client certificate.
    e2e::terminate(old, Duration::from_secs(15));
    let tessera = Path::new(env!("CARGO_BIN_EXE_tessera"));
    let cert = (h.ns.as_str(), SECRET);
    let _extender = start_extender_mtls(tessera, addr, &h.scheduler, &kubeconfig, cert, &ext_dir);
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns);
    let secret = e2e::wait_for("the extender's Secret", Duration::from_secs(30), || {
        let secrets = secrets.clone();
        async move { secrets.get_opt(SECRET).await.ok().flatten() }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    let anonymous = client(&secret_field(&secret, "ca.crt"), None);
    e2e::wait_for(
        "the new extender's /readyz",
        Duration::from_secs(30),
        || {
            let anonymous = anonymous.clone();
            async move {
                let (status, _) = request(addr, anonymous, "GET", "/readyz", "").await.ok()?;
                (status == 200).then_some(())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));

    // Between the steps the previous kube-scheduler still calls plain HTTP, which the new
    // extender refuses: pods created now wait, neither placed nor failed.
    let during = names("during", 2);
    for n in &during {
        h.create_pod(n, &HALF, &[]).await;
    }
    // The scheduler tried them and failed (not merely not yet got to them).
    let tried = e2e::wait_for(
        "the previous kube-scheduler to try the new pods",
        Duration::from_secs(30),
        || async {
            let pods = pods_by_name(&h).await;
            let why: Vec<String> = during
                .iter()
                .filter_map(|n| not_scheduled(&pods[n]))
                .collect();
            (why.len() == during.len()).then_some(why)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    eprintln!(
        "upgrade: between the steps, kube-scheduler said: {:?}",
        tried[0]
    );
    let pods = pods_by_name(&h).await;
    for n in &during {
        let p = &pods[n];
        assert_eq!(
            node_of(p),
            None,
            "{n} was placed by a scheduler that cannot reach the extender"
        );
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        assert_eq!(phase, Some("Pending"), "{n}");
    }

    // Step 4, kube-scheduler: the shipped configuration, over mutual TLS with the files the
    // Deployment mounts from the Secret.
    drop(old_scheduler);
    project_client_files(&secret, &client_dir);
    let config = dir.path().join("scheduler-config.yaml");
    std::fs::write(
        &config,
        scheduler_config_mtls(&kubeconfig, addr, &h.scheduler, &client_dir),
    )
    .unwrap();
    let rolled = Instant::now();
    let _scheduler = start_scheduler(&kube_scheduler, &config, &sched_log);
    wait_bound(&h, &during, &logs).await;
    eprintln!(
        "upgrade: the pods created between the extender and scheduler steps were placed {:.1} s after the new kube-scheduler started",
        rolled.elapsed().as_secs_f64()
    );
    let after = names("after", 2);
    for n in &after {
        h.create_pod(n, &HALF, &[]).await;
    }
    wait_bound(&h, &after, &logs).await;

    // The GPUs are full: one more share has no room, which the new extender knows only by
    // counting what the previous release placed.
    h.create_pod("one-too-many", &HALF, &[]).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let pods = pods_by_name(&h).await;
    assert_eq!(
        node_of(&pods["one-too-many"]),
        None,
        "placed beyond the GPUs' memory: the previous release's shares were not counted\n{}",
        logs()
    );
    let per_gpu = assigned(&h).await;
    assert_eq!(per_gpu.len(), 4, "{per_gpu:?}");
    for (gpu, (mib, milli)) in &per_gpu {
        assert_eq!((*mib, *milli), (15_360, 1_000), "GPU {gpu}: {per_gpu:?}");
    }
    // Nothing the previous release placed was moved or rewritten.
    for (n, (node, assignment)) in &placed_before {
        let p = &pods[n];
        assert_eq!(node_of(p), Some(node.as_str()), "{n}");
        assert_eq!(assignment_of(p).as_ref(), Some(assignment), "{n}");
    }
}
