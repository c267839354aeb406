use std::collections::BTreeSet;

use super::*;
use crate::annotations::{Assignment, ContainerAssignment, GpuShare};
use crate::cluster::{NodeFacts, PodFacts};
use crate::request::{ContainerDemand, GpuDemand};
use crate::testing;

/// One node with `gpus` T4s (16 GiB), and pods `(name, gpu, MiB, priority)` holding shares.
fn cluster(gpus: u32, pods: &[(&str, u32, u64, i32)]) -> Cluster {
    let mut c = Cluster::new(10);
    c.apply_node(NodeFacts {
        name: "n1".into(),
        zone: None,
        inventory: testing::gpus("n1", gpus, "T4", 16384),
        inventory_error: None,
        heartbeat: None,
    });
    for (name, gpu, mem_mib, priority) in pods {
        let notices = c.apply_pod(PodFacts {
            key: format!("ns/{name}"),
            uid: format!("uid-{name}"),
            priority: *priority,
            node: Some("n1".into()),
            assignment: Some(Assignment {
                node: "n1".into(),
                containers: vec![ContainerAssignment {
                    container: "main".into(),
                    init: false,
                    gpus: vec![GpuShare {
                        uuid: format!("GPU-n1-{gpu}"),
                        mem_mib: *mem_mib,
                        core_milli: 100,
                    }],
                }],
            }),
            assignment_error: None,
            group: None,
            terminal: false,
            run_as: crate::request::RunAs::Unstated,
            origin: crate::cluster::Origin::default(),
        });
        assert!(notices.is_empty(), "{notices:?}");
    }
    c
}

fn wants(mem_mib: u64, gpus: u32) -> PodRequest {
    PodRequest {
        containers: vec![ContainerDemand {
            container: "main".into(),
            demand: GpuDemand {
                gpus,
                mem_mib,
                mem_percent: 0,
                core_milli: 100,
            },
        }],
        ..Default::default()
    }
}

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("ns/{n}")).collect()
}

#[test]
fn the_single_lowest_priority_share_that_frees_enough_is_chosen() {
    let c = cluster(
        1,
        &[("a", 0, 4096, 1), ("b", 0, 8192, 0), ("c", 0, 4096, 5)],
    );
    let v = victims(&c, &wants(8192, 1), 10, "n1", &BTreeSet::new()).unwrap();
    assert_eq!(v, keys(&["b"]));
}

#[test]
fn fewest_victims_on_one_gpu_beat_many_small_ones() {
    // GPU 0: four small shares of priority 0; GPU 1: one big share of priority 3.
    let c = cluster(
        2,
        &[
            ("s1", 0, 4096, 0),
            ("s2", 0, 4096, 0),
            ("s3", 0, 4096, 0),
            ("s4", 0, 4096, 0),
            ("big", 1, 16384, 3),
        ],
    );
    let v = victims(&c, &wants(12288, 1), 10, "n1", &BTreeSet::new()).unwrap();
    assert_eq!(v, keys(&["big"]));
}

#[test]
fn victims_not_needed_are_given_back() {
    // Releasing in priority order would take a (0) then b (1); b alone is enough.
    let c = cluster(
        1,
        &[("a", 0, 2048, 0), ("b", 0, 12288, 1), ("c", 0, 2048, 9)],
    );
    let v = victims(&c, &wants(12288, 1), 10, "n1", &BTreeSet::new()).unwrap();
    assert_eq!(v, keys(&["b"]));
}

#[test]
fn equal_or_higher_priority_shares_are_never_victims() {
    let c = cluster(1, &[("a", 0, 16384, 10)]);
    let err = victims(&c, &wants(4096, 1), 10, "n1", &BTreeSet::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "evicting every lower-priority GPU share on node n1 would not make room"
    );
}

#[test]
fn what_kube_scheduler_already_evicts_counts_as_freed() {
    let c = cluster(1, &[("a", 0, 8192, 0), ("b", 0, 8192, 0)]);
    let already: BTreeSet<String> = keys(&["a"]).into_iter().collect();
    assert!(
        victims(&c, &wants(8192, 1), 10, "n1", &already)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_multi_gpu_pod_gets_victims_across_gpus() {
    let c = cluster(2, &[("a", 0, 16384, 0), ("b", 1, 16384, 1)]);
    let v = victims(&c, &wants(8192, 2), 10, "n1", &BTreeSet::new()).unwrap();
    assert_eq!(v, keys(&["a", "b"]));
}

#[test]
fn a_share_reserved_by_a_bind_in_flight_is_never_a_victim() {
    let mut c = cluster(1, &[]);
    let assignment = Assignment {
        node: "n1".into(),
        containers: vec![ContainerAssignment {
            container: "main".into(),
            init: false,
            gpus: vec![GpuShare {
                uuid: "GPU-n1-0".into(),
                mem_mib: 16384,
                core_milli: 100,
            }],
        }],
    };
    c.ledger
        .apply_assignment("ns/inflight", &assignment, crate::request::RunAs::Unstated)
        .unwrap();
    assert!(matches!(
        victims(&c, &wants(4096, 1), 10, "n1", &BTreeSet::new()),
        Err(NoVictims::NotEnough { .. })
    ));
}
