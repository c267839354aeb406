//! The real kube-scheduler with the shipped `tessera-scheduler` configuration
//! (manifests/scheduler/scheduler-config.yaml) and an extender that watches the cluster, against
//! a real apiserver. Needs `TESSERA_E2E_KUBECONFIG` and `TESSERA_E2E_KUBE_SCHEDULER`; skipped,
//! saying so, when either is unset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::collections::BTreeSet;
use std::time::Duration;

use kube::api::DeleteParams;
use tessera_core::keys;
use tessera_tests::cluster::{Harness, assigned};
use tessera_tests::e2e;
use tessera_tests::scheduler::{scheduler_config, start_scheduler};

#[tokio::test]
async fn kube_scheduler_with_the_shipped_profile_places_gpu_shares_and_quorum_members() {
    let test = "kube_scheduler_with_the_shipped_profile";
    let (Some(kubeconfig), Some(binary)) = (e2e::kubeconfig(test), e2e::kube_scheduler(test))
    else {
        return;
    };
    let h = Harness::start(&kubeconfig).await;
    let (state, addr, watching) = h.extender().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("scheduler-config.yaml");
    std::fs::write(&config, scheduler_config(&kubeconfig, addr, &h.scheduler)).unwrap();
    let log = dir.path().join("kube-scheduler.log");
    let scheduler = start_scheduler(&binary, &config, &log);

    // Three quorum members without GPUs, and ten shares of 7000 MiB / 40% (two per GPU fit).
    let group = [
        (keys::LABEL_GROUP, "zk"),
        (keys::LABEL_QUORUM, "true"),
        ("tessera.dev/group-size", "3"),
    ];
    for i in 0..3 {
        h.create_pod(&format!("zk-{i}"), &[], &group).await;
    }
    let share = [
        (keys::RESOURCE_GPU, "1"),
        (keys::RESOURCE_GPU_MEM, "7000"),
        (keys::RESOURCE_GPU_CORE, "40"),
    ];
    for i in 0..10 {
        h.create_pod(&format!("share-{i}"), &share, &[]).await;
    }
    let pods = h.pods();
    let placed = e2e::wait_for(
        "kube-scheduler to bind all 13 pods",
        Duration::from_secs(90),
        || {
            let pods = pods.clone();
            async move {
                let list = pods.list(&Default::default()).await.ok()?;
                let bound: Vec<(String, String)> = list
                    .items
                    .iter()
                    .filter_map(|p| {
                        Some((
                            p.metadata.name.clone()?,
                            p.spec.as_ref()?.node_name.clone()?,
                        ))
                    })
                    .collect();
                (bound.len() == 13).then_some(bound)
            }
        },
    )
    .await;
    let placed = match placed {
        Ok(p) => p,
        Err(e) => panic!(
            "{e}\n--- kube-scheduler log ---\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        ),
    };
    let zk_nodes: BTreeSet<&str> = placed
        .iter()
        .filter(|(name, _)| name.starts_with("zk-"))
        .map(|(_, node)| node.as_str())
        .collect();
    assert_eq!(zk_nodes.len(), 3, "quorum members share a node: {placed:?}");
    for (name, node) in placed.iter().filter(|(n, _)| n.starts_with("share-")) {
        assert!(
            h.nodes.contains(node),
            "{name} landed on {node}, which has no GPUs"
        );
    }
    let per_gpu = assigned(&h).await;
    let pods_on_gpus: u32 = per_gpu.values().map(|(_, core)| core / 400).sum();
    assert_eq!(pods_on_gpus, 10, "{per_gpu:?}");
    for (gpu, (mem, core)) in &per_gpu {
        assert!(
            *mem <= 15360 && *core <= 1000,
            "{gpu} over-committed: {mem} MiB, {core}"
        );
    }
    let s = state.clone();
    e2e::wait_for(
        "the extender to see every share bound",
        e2e::SYNC_LIMIT,
        || {
            let s = s.clone();
            async move {
                (s.read().reservations.is_empty() && s.read().ledger.pod_count() == 10)
                    .then_some(())
            }
        },
    )
    .await
    .unwrap();

    // Deleting shares frees them for pods that could not fit before.
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    for i in 10..13 {
        h.create_pod(&format!("share-{i}"), &share, &[]).await;
    }
    for i in 0..3 {
        pods.delete(&format!("share-{i}"), &now).await.unwrap();
    }
    let late = e2e::wait_for(
        "the late shares to be bound",
        Duration::from_secs(90),
        || {
            let pods = pods.clone();
            async move {
                let mut bound = 0;
                for i in 10..13 {
                    let p = pods.get(&format!("share-{i}")).await.ok()?;
                    bound += usize::from(p.spec?.node_name.is_some());
                }
                (bound == 3).then_some(())
            }
        },
    )
    .await;
    if let Err(e) = late {
        panic!(
            "{e}\n--- kube-scheduler log ---\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    for (gpu, (mem, core)) in assigned(&h).await {
        if mem <= 15360 && core <= 1000 {
            continue;
        }
        let mut holders = Vec::new();
        for p in pods.list(&Default::default()).await.unwrap() {
            let ann = p.metadata.annotations.clone().unwrap_or_default();
            if ann
                .get(keys::ANNOTATION_GPU_ASSIGNMENT)
                .is_some_and(|a| a.contains(&gpu))
            {
                holders.push(format!(
                    "{} deleting={:?} bind-time={:?}",
                    p.metadata.name.clone().unwrap_or_default(),
                    p.metadata.deletion_timestamp,
                    ann.get(keys::ANNOTATION_BIND_TIME)
                ));
            }
        }
        panic!(
            "{gpu} over-committed: {mem} MiB, {core}; held by {holders:?}\n--- kube-scheduler log ---\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    drop(scheduler);
    watching.abort();
}
