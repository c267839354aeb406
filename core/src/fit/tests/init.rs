//! Init containers and native sidecars: placed by the init rule, charged by it, and read back
//! from their assignment the same way.

use super::*;
use crate::annotations::{decode_assignment, encode_assignment};
use crate::ledger::Holding;
use crate::request::{ContainerDemand, GpuDemand, InitDemand};

fn mem(container: &str, mem_mib: u64) -> ContainerDemand {
    ContainerDemand {
        container: container.into(),
        demand: GpuDemand {
            gpus: 1,
            mem_mib,
            mem_percent: 0,
            core_milli: 100,
        },
    }
}

/// A pod of `sidecars` then `apps` (together) and `init` (each after that many sidecars).
fn pod(together: &[(&str, u64)], init: &[(&str, u64, usize)]) -> PodRequest {
    PodRequest {
        containers: together.iter().map(|&(n, m)| mem(n, m)).collect(),
        init: init
            .iter()
            .map(|&(n, m, sidecars_before)| InitDemand {
                container: mem(n, m),
                sidecars_before,
            })
            .collect(),
        ..Default::default()
    }
}

fn holding(placement: Placement) -> Holding {
    Holding {
        placement,
        cpu_milli: 0,
        mem_mib: 0,
        run_as: RunAs::Unstated,
    }
}

#[test]
fn an_init_share_needs_room_beside_the_sidecars_before_it_not_beside_the_app() {
    let node = testing::node("n1", 1, "T4", 16384);
    // 12 GiB init then an 8 GiB app: the pod needs max(12, 8) GiB at once, not 20.
    let fits = pod(&[("main", 8192)], &[("warm", 12288, 0)]);
    let placement = place(&node, &fits, GpuChoice::BestFit).unwrap();
    assert_eq!(placement.init[0].placement.container, "warm");
    let mut charged = node.clone();
    charged.apply("ml/p", holding(placement)).unwrap();
    assert_eq!(charged.gpus[0].mem_free_mib, 16384 - 12288);
    assert_eq!(
        charged.gpus[0].slots_free,
        10 - 1,
        "the kubelet reuses the slot"
    );
    // A 6 GiB sidecar started before the init container runs beside it: 18 GiB do not fit.
    let too_big = pod(&[("agent", 6144), ("main", 4096)], &[("warm", 12288, 1)]);
    let err = place(&node, &too_big, GpuChoice::BestFit).unwrap_err();
    assert!(err.to_string().contains("\"warm\""), "{err}");
    // Started after it, the same sidecar does not.
    let after = pod(&[("agent", 6144), ("main", 4096)], &[("warm", 12288, 0)]);
    assert!(place(&node, &after, GpuChoice::BestFit).is_ok());
}

#[test]
fn a_sidecar_share_is_charged_for_the_pods_life_so_a_full_gpu_is_not_offered_again() {
    let mut node = testing::node("n1", 1, "T4", 16384);
    let first = pod(&[("agent", 12288), ("main", 4096)], &[]);
    let placement = place(&node, &first, GpuChoice::BestFit).unwrap();
    node.apply("ml/a", holding(placement)).unwrap();
    assert_eq!(node.gpus[0].mem_free_mib, 0);
    assert!(place(&node, &pod(&[("main", 1024)], &[]), GpuChoice::BestFit).is_err());
}

#[test]
fn an_init_only_pod_does_not_pass_through_and_takes_the_general_path() {
    let node = testing::node("n1", 2, "T4", 16384);
    let only_init = pod(&[], &[("warm", 4096, 0)]);
    let chosen = try_choose(&node, &only_init, GpuChoice::BestFit).unwrap();
    let placement = chosen.into_placement(&node);
    assert!(placement.containers.is_empty());
    assert_eq!(placement.init.len(), 1);
}

#[test]
fn the_assignment_keeps_spec_order_and_reads_back_to_the_same_charge() {
    let node = testing::node("n1", 2, "T4", 16384);
    let p = pod(
        &[("agent", 2048), ("late", 1024), ("main", 4096)],
        &[("fetch", 8192, 0), ("warm", 6144, 1)],
    );
    let placement = place(&node, &p, GpuChoice::BestFit).unwrap();
    let assignment = node.to_assignment(&placement);
    let order: Vec<(&str, bool)> = assignment
        .containers
        .iter()
        .map(|c| (c.container.as_str(), c.init))
        .collect();
    // Spec order: fetch, agent (sidecar), warm, late (sidecar), then the app.
    assert_eq!(
        order,
        [
            ("fetch", true),
            ("agent", false),
            ("warm", true),
            ("late", false),
            ("main", false)
        ]
    );
    let text = encode_assignment(&assignment);
    let back = node
        .placement_of(&decode_assignment(&text).unwrap())
        .unwrap();
    assert_eq!(back, placement);
    assert_eq!(back.charges(), placement.charges());
}

#[test]
fn an_assignment_written_before_init_containers_reads_as_app_containers() {
    let node = testing::node("n1", 1, "T4", 16384);
    let old = r#"{"version":"v1","node":"n1","containers":[
        {"container":"main","gpus":[{"uuid":"GPU-n1-0","memMib":4096,"coreMilli":300}]}]}"#;
    let placement = node.placement_of(&decode_assignment(old).unwrap()).unwrap();
    assert!(placement.init.is_empty());
    assert_eq!(placement.containers[0].container, "main");
    // And an app-only assignment is still written without the new field.
    let text = encode_assignment(&node.to_assignment(&placement));
    assert!(!text.contains("init"), "{text}");
}
