//! The real `tessera extender` killed with SIGKILL while the real kube-scheduler is placing GPU
//! shares, then restarted: nothing is lost or handed out twice. Runs against the cluster in
//! `TESSERA_E2E_KUBECONFIG` with the kube-scheduler in `TESSERA_E2E_KUBE_SCHEDULER`; skipped,
//! saying so, when either is unset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tessera_core::keys;
use tessera_tests::cluster::{Harness, assigned};
use tessera_tests::e2e::{self, KillOnDrop};
use tessera_tests::process::{self, free_addr, metric, wait_ready};
use tessera_tests::scheduler::{scheduler_config, start_scheduler};

fn start_extender(addr: SocketAddr, h: &Harness, log: &std::path::Path) -> KillOnDrop {
    let tessera = std::path::Path::new(env!("CARGO_BIN_EXE_tessera"));
    process::start_extender(tessera, addr, &h.scheduler, &h.kubeconfig, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_loses_and_duplicates_nothing() {
    let test = "extender_sigkill_mid_run";
    let (Some(kubeconfig), Some(binary)) = (e2e::kubeconfig(test), e2e::kube_scheduler(test))
    else {
        return;
    };
    let h = Harness::start(&kubeconfig).await;
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let ext_log = dir.path().join("extender.log");
    let mut extender = start_extender(addr, &h, &ext_log);
    wait_ready(addr);
    let config = dir.path().join("scheduler-config.yaml");
    std::fs::write(&config, scheduler_config(&kubeconfig, addr, &h.scheduler)).unwrap();
    let sched_log = dir.path().join("kube-scheduler.log");

    // 14 shares of 7000 MiB / 40% on 6 GPUs of 15 GiB: 12 fit, 2 must stay pending.
    let share = [
        (keys::RESOURCE_GPU, "1"),
        (keys::RESOURCE_GPU_MEM, "7000"),
        (keys::RESOURCE_GPU_CORE, "40"),
    ];
    for i in 0..14 {
        h.create_pod(&format!("share-{i}"), &share, &[]).await;
    }
    let _scheduler = start_scheduler(&binary, &config, &sched_log);
    let pods = h.pods();
    let count_bound = || {
        let pods = pods.clone();
        async move {
            let list = pods.list(&Default::default()).await.ok()?;
            Some(
                list.items
                    .iter()
                    .filter(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_some()))
                    .count(),
            )
        }
    };
    e2e::wait_for("a few binds", Duration::from_secs(60), || {
        let c = count_bound();
        async move { c.await.filter(|n| *n >= 3) }
    })
    .await
    .unwrap();

    // SIGKILL: no shutdown, no goodbye; then a new process on the same address.
    extender.0.kill().unwrap();
    extender.0.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _restarted = start_extender(addr, &h, &ext_log);
    wait_ready(addr);

    let logs = || {
        format!(
            "--- extender ---\n{}\n--- kube-scheduler ---\n{}",
            std::fs::read_to_string(&ext_log).unwrap_or_default(),
            std::fs::read_to_string(&sched_log).unwrap_or_default()
        )
    };
    let all = e2e::wait_for("12 shares bound", Duration::from_secs(120), || {
        let c = count_bound();
        async move { c.await.filter(|n| *n >= 12) }
    })
    .await;
    if let Err(e) = all {
        panic!("{e}\n{}", logs());
    }
    // Nothing more gets through: the last two never fit.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count_bound().await, Some(12), "{}", logs());
    let per_gpu = assigned(&h).await;
    for (gpu, (mem, core)) in &per_gpu {
        assert!(
            *mem <= 15360 && *core <= 1000,
            "{gpu} over-committed: {mem} MiB, {core}\n{}",
            logs()
        );
    }
    let held: u32 = per_gpu.values().map(|(_, core)| core / 400).sum();
    assert_eq!(held, 12, "{per_gpu:?}");
    // The restarted extender counts exactly the 12 bound shares, with nothing left reserved.
    let start = Instant::now();
    loop {
        let holding = metric(addr, "tessera_extender_holding_pods");
        let pending = metric(addr, "tessera_extender_pending_reservations");
        if (holding, pending) == (Some(12.0), Some(0.0)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "restarted extender holds {holding:?} pods with {pending:?} reservations"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
