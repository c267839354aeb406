use super::*;
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
