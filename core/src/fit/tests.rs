use super::*;
use crate::inventory::Isolation;
use crate::ledger::SharingPolicy;
use crate::request::{ContainerDemand, GpuDemand};
use crate::testing::{self, hold};

fn share_pod(mem: u64, core_pct: u32, gpus: u32) -> PodRequest {
    PodRequest {
        containers: vec![ContainerDemand {
            container: "main".into(),
            demand: GpuDemand {
                gpus,
                mem_mib: mem,
                mem_percent: 0,
                core_milli: core_pct * 10,
            },
        }],
        ..Default::default()
    }
}

#[test]
fn filter_rejects_node_whose_gpus_lack_memory_naming_each_gpu() {
    let mut node = testing::node("n1", 2, "T4", 16384);
    hold(&mut node, "a", 0, 14000, 100);
    hold(&mut node, "b", 1, 15000, 100);
    let err = place(&node, &share_pod(4096, 20, 1), GpuChoice::BestFit).unwrap_err();
    assert_eq!(
        err.to_string(),
        "node n1: container \"main\" needs 1 GPU(s) with 4096 MiB, 20% compute, 0 usable \
         (GPU-n1-0: 2384 MiB free, needs 4096; GPU-n1-1: 1384 MiB free, needs 4096)"
    );
}

#[test]
fn filter_reasons_cover_compute_health_model_and_exclusivity() {
    let mut node = testing::node("n1", 4, "T4", 16384);
    hold(&mut node, "a", 0, 0, 900);
    node.gpus[1].healthy = false;
    hold(&mut node, "b", 2, 1, 10);
    let err = place(&node, &share_pod(0, 100, 4), GpuChoice::BestFit)
        .unwrap_err()
        .to_string();
    assert!(err.contains("GPU-n1-0: in use, whole GPU needed"), "{err}");
    assert!(err.contains("GPU-n1-1: unhealthy"), "{err}");
    assert!(err.contains("GPU-n1-2: in use, whole GPU needed"), "{err}");
    assert!(err.contains("1 usable"), "{err}");
    let mut a100_only = share_pod(1, 10, 1);
    a100_only.models = vec!["A100".into()];
    let err = place(&node, &a100_only, GpuChoice::BestFit)
        .unwrap_err()
        .to_string();
    assert!(err.contains("model T4 not allowed"), "{err}");
    let err = place(&node, &share_pod(0, 20, 1), GpuChoice::BestFit)
        .map(|p| p.containers[0].shares[0].gpu);
    assert_eq!(err, Ok(2), "best fit takes the fullest GPU that fits");
}

#[test]
fn best_fit_packs_and_worst_fit_spreads() {
    let mut node = testing::node("n1", 3, "T4", 16384);
    hold(&mut node, "a", 1, 1000, 500);
    let pod = share_pod(1000, 30, 1);
    let gpu = |c| place(&node, &pod, c).unwrap().containers[0].shares[0].gpu;
    assert_eq!(gpu(GpuChoice::BestFit), 1);
    assert_eq!(gpu(GpuChoice::WorstFit), 0);
}

#[test]
fn two_containers_never_count_the_same_free_memory_twice() {
    let node = testing::node("n1", 1, "T4", 16384);
    let mut pod = share_pod(10000, 10, 1);
    pod.containers.push(ContainerDemand {
        container: "side".into(),
        demand: pod.containers[0].demand,
    });
    let err = place(&node, &pod, GpuChoice::BestFit)
        .unwrap_err()
        .to_string();
    assert!(err.contains("container \"side\""), "{err}");
}

#[test]
fn whole_gpus_take_all_memory_and_compute_and_multi_gpu_uses_distinct_gpus() {
    let node = testing::node("n1", 4, "T4", 16384);
    let p = place(&node, &share_pod(0, 100, 2), GpuChoice::BestFit).unwrap();
    let shares = &p.containers[0].shares;
    assert_eq!(shares.len(), 2);
    assert_ne!(shares[0].gpu, shares[1].gpu);
    assert!(
        shares
            .iter()
            .all(|s| s.mem_mib == 16384 && s.core_milli == 1000)
    );
}

#[test]
fn host_resources_are_checked_only_when_tracked() {
    let mut node = testing::node("n1", 1, "T4", 16384);
    let mut pod = share_pod(1, 1, 1);
    pod.cpu_milli = 1_000_000;
    assert!(place(&node, &pod, GpuChoice::BestFit).is_ok());
    node.host.cpu_milli = Some(4000);
    node.cpu_free_milli = 4000;
    let err = place(&node, &pod, GpuChoice::BestFit).unwrap_err();
    assert!(
        matches!(
            err,
            Unfit::Host {
                what: "cpu milli",
                ..
            }
        ),
        "{err}"
    );
}

/// A node of `count` T4s whose isolation is `isolation`, placed by `policy`.
fn isolated_node(isolation: Isolation, policy: SharingPolicy, count: u32) -> NodeLedger {
    let mut inventory = testing::gpus("n1", count, "T4", 16384);
    for g in &mut inventory.gpus {
        g.isolation = isolation;
    }
    NodeLedger::new(
        "n1",
        None,
        &inventory,
        crate::ledger::HostCapacity::untracked(),
        10,
        policy,
    )
}

fn as_user(mut pod: PodRequest, run_as: RunAs) -> PodRequest {
    pod.run_as = run_as;
    pod
}

fn holding(placement: Placement, run_as: RunAs) -> crate::ledger::Holding {
    crate::ledger::Holding {
        placement,
        cpu_milli: 0,
        mem_mib: 0,
        run_as,
    }
}

#[test]
fn without_live_isolation_only_whole_gpus_are_placed_unless_soft_sharing() {
    let node = isolated_node(Isolation::None, SharingPolicy::IsolatedOnly, 1);
    let err = place(&node, &share_pod(4096, 25, 1), GpuChoice::BestFit)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("GPU-n1-0: no live MPS isolation, whole GPUs only"),
        "{err}"
    );
    assert!(place(&node, &share_pod(0, 100, 1), GpuChoice::BestFit).is_ok());
    let soft = isolated_node(Isolation::None, SharingPolicy::Soft, 1);
    assert!(place(&soft, &share_pod(4096, 25, 1), GpuChoice::BestFit).is_ok());
    for live in [Isolation::Mps, Isolation::MpsMultiUser] {
        let node = isolated_node(live, SharingPolicy::IsolatedOnly, 1);
        assert!(place(&node, &share_pod(4096, 25, 1), GpuChoice::BestFit).is_ok());
    }
}

#[test]
fn a_single_user_mps_node_keeps_every_client_to_one_user() {
    let mut node = isolated_node(Isolation::Mps, SharingPolicy::IsolatedOnly, 2);
    let first = as_user(share_pod(4096, 25, 1), RunAs::Uid(1000));
    let placement = place(&node, &first, GpuChoice::BestFit).unwrap();
    node.apply("ns/a", holding(placement, RunAs::Uid(1000)))
        .unwrap();
    assert_eq!(node.mps_user(), Some(RunAs::Uid(1000)));
    // Same user: fits, on either GPU. Another user: refused node-wide, even on the idle GPU.
    assert!(place(&node, &first, GpuChoice::WorstFit).is_ok());
    let other = as_user(share_pod(4096, 25, 1), RunAs::Uid(2000));
    assert!(!host_fits(&node, &other));
    assert_eq!(
        place(&node, &other, GpuChoice::WorstFit)
            .unwrap_err()
            .to_string(),
        "node n1: its MPS server runs without multi-user support and serves UID 1000; \
         this pod runs as UID 2000"
    );
    let whole = as_user(share_pod(0, 100, 1), RunAs::Uid(2000));
    assert!(
        place(&node, &whole, GpuChoice::WorstFit).is_err(),
        "whole GPUs are MPS clients too"
    );
    // Once the first user's pod is gone, the other user may come.
    node.release("ns/a");
    assert_eq!(node.mps_user(), None);
    assert!(place(&node, &other, GpuChoice::WorstFit).is_ok());
    let mixed = as_user(share_pod(4096, 25, 1), RunAs::Mixed);
    assert!(
        place(&node, &mixed, GpuChoice::WorstFit)
            .unwrap_err()
            .to_string()
            .contains("this pod runs as several users")
    );
}

#[test]
fn a_multi_user_mps_node_takes_clients_of_any_user() {
    let mut node = isolated_node(Isolation::MpsMultiUser, SharingPolicy::IsolatedOnly, 1);
    let first = as_user(share_pod(4096, 25, 1), RunAs::Uid(1000));
    let placement = place(&node, &first, GpuChoice::BestFit).unwrap();
    node.apply("ns/a", holding(placement, RunAs::Uid(1000)))
        .unwrap();
    let other = as_user(share_pod(4096, 25, 1), RunAs::Uid(2000));
    assert!(place(&node, &other, GpuChoice::BestFit).is_ok());
}

#[test]
fn gpu_state_keeps_its_size() {
    // Scoring reads every GPU of every node per decision (see GpuState's comment).
    assert_eq!(std::mem::size_of::<GpuState>(), 40);
}

mod init;

#[test]
fn first_fit_takes_the_lowest_index_gpus_that_fit_where_best_fit_packs() {
    // GPU 0 has 20% free (too little), 1 and 2 are idle, 3 is half used.
    let mut node = testing::node("n1", 4, "T4", 16384);
    hold(&mut node, "a", 0, 1000, 800);
    hold(&mut node, "b", 3, 1000, 500);
    let gpus = |pod: &PodRequest, choice| -> Vec<usize> {
        let p = place(&node, pod, choice).unwrap();
        p.containers
            .iter()
            .flat_map(|c| &c.shares)
            .map(|s| s.gpu)
            .collect()
    };
    let share = share_pod(1000, 30, 1);
    assert_eq!(gpus(&share, GpuChoice::FirstFit), [1]);
    assert_eq!(gpus(&share, GpuChoice::BestFit), [3]);
    // A request for two GPUs takes the first two that fit, as the allocator's search does.
    let two = share_pod(1000, 30, 2);
    assert_eq!(gpus(&two, GpuChoice::FirstFit), [1, 2]);
    // Best fit takes GPUs 3 and 1 (shares listed in index order).
    assert_eq!(gpus(&two, GpuChoice::BestFit), [1, 3]);
    // Whole GPUs: the first idle ones.
    assert_eq!(gpus(&share_pod(0, 100, 1), GpuChoice::FirstFit), [1]);
    // The general path (two containers) picks the same way, container after container.
    let mut pair = share_pod(1000, 30, 1);
    pair.containers.push(ContainerDemand {
        container: "side".into(),
        demand: pair.containers[0].demand,
    });
    assert_eq!(gpus(&pair, GpuChoice::FirstFit), [1, 1]);
    assert_eq!(gpus(&pair, GpuChoice::BestFit), [3, 1]);
}
