use proptest::prelude::*;

use super::*;
use crate::testing;

fn share(gpu: usize, mem_mib: u64, core_milli: u32) -> Holding {
    Holding {
        placement: Placement {
            init: Vec::new(),
            containers: vec![ContainerPlacement {
                container: "c".into(),
                shares: vec![Share {
                    gpu,
                    mem_mib,
                    core_milli,
                }],
            }],
        },
        cpu_milli: 0,
        mem_mib: 0,
        run_as: crate::request::RunAs::Unstated,
    }
}

fn cluster() -> ClusterLedger {
    let mut ledger = ClusterLedger::new(4);
    for name in ["a", "b"] {
        ledger.upsert_node(
            name,
            None,
            &testing::gpus(name, 2, "T4", 16384),
            HostCapacity::untracked(),
        );
    }
    ledger
}

#[test]
fn apply_refuses_over_commit_and_changes_nothing() {
    let mut ledger = cluster();
    ledger.apply_at(0, "ns/p1", share(0, 10000, 600)).unwrap();
    let before = ledger.clone();
    let err = ledger
        .apply_at(0, "ns/p2", share(0, 8000, 100))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "node \"a\" GPU GPU-a-0: memory MiB requested 8000, only 6384 free"
    );
    assert!(ledger.same_state(&before));
    let err = ledger.apply_at(0, "ns/p3", share(0, 100, 500)).unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::OverCommit {
                what: "compute milli",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn slots_bound_the_number_of_shares_per_gpu() {
    let mut ledger = cluster();
    for i in 0..4 {
        ledger
            .apply_at(0, &format!("ns/p{i}"), share(1, 1, 1))
            .unwrap();
    }
    let err = ledger.apply_at(0, "ns/p4", share(1, 1, 1)).unwrap_err();
    assert!(
        matches!(err, LedgerError::OverCommit { what: "slots", .. }),
        "{err}"
    );
}

#[test]
fn release_gives_back_exactly_what_was_held() {
    let mut ledger = cluster();
    let empty = ledger.clone();
    ledger.apply_at(1, "ns/p", share(1, 4096, 250)).unwrap();
    assert_eq!(ledger.node_of("ns/p").map(|n| n.name.as_str()), Some("b"));
    assert!(ledger.release("ns/p").is_some());
    assert!(ledger.release("ns/p").is_none());
    assert!(ledger.same_state(&empty));
}

#[test]
fn a_pod_is_held_once() {
    let mut ledger = cluster();
    ledger.apply_at(0, "ns/p", share(0, 1, 1)).unwrap();
    let err = ledger.apply_at(1, "ns/p", share(0, 1, 1)).unwrap_err();
    assert_eq!(
        err,
        LedgerError::AlreadyHeld {
            pod: "ns/p".into(),
            node: "a".into()
        }
    );
}

#[test]
fn inventory_update_keeps_holdings_and_drops_those_on_vanished_gpus() {
    let mut ledger = cluster();
    ledger.apply_at(0, "ns/keep", share(0, 1000, 100)).unwrap();
    ledger.apply_at(0, "ns/lost", share(1, 1000, 100)).unwrap();
    let dropped = ledger.upsert_node(
        "a",
        None,
        &testing::gpus("a", 1, "T4", 16384),
        HostCapacity::untracked(),
    );
    assert_eq!(dropped, vec!["ns/lost".to_string()]);
    assert!(ledger.node_of("ns/lost").is_none());
    assert_eq!(ledger.node("a").unwrap().gpus[0].mem_free_mib, 15384);
}

#[test]
fn remove_node_forgets_its_pods_and_keeps_the_others_findable() {
    let mut ledger = cluster();
    ledger.apply_at(0, "ns/on-a", share(0, 1, 1)).unwrap();
    ledger.apply_at(1, "ns/on-b", share(0, 1, 1)).unwrap();
    assert_eq!(ledger.remove_node("a"), vec!["ns/on-a".to_string()]);
    assert_eq!(
        ledger.node_of("ns/on-b").map(|n| n.name.as_str()),
        Some("b")
    );
    assert!(ledger.release("ns/on-b").is_some());
}

#[derive(Debug, Clone)]
enum Op {
    Apply {
        node: usize,
        gpu: usize,
        mem: u64,
        core: u32,
    },
    Release(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..2, 0usize..2, 0u64..9000, 0u32..700).prop_map(|(node, gpu, mem, core)| Op::Apply { node, gpu, mem, core }),
        1 => (0usize..40).prop_map(Op::Release),
    ]
}

proptest! {
    #[test]
    fn never_over_commits_and_rebuild_equals_incremental(ops in prop::collection::vec(op(), 1..60)) {
        let mut ledger = cluster();
        let mut live: Vec<String> = Vec::new();
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Apply { node, gpu, mem, core } => {
                    let pod = format!("ns/p{i}");
                    if ledger.apply_at(node, &pod, share(gpu, mem, core)).is_ok() {
                        live.push(pod);
                    }
                }
                Op::Release(k) if !live.is_empty() => {
                    let pod = live.remove(k % live.len());
                    prop_assert!(ledger.release(&pod).is_some());
                }
                Op::Release(_) => {}
            }
            // Conservation: free + held == total on every GPU.
            for node in ledger.nodes() {
                for (g, gpu) in node.gpus.iter().enumerate() {
                    let held: Vec<&Share> = node.holders().values().flat_map(|h| h.placement.shares()).filter(|s| s.gpu == g).collect();
                    prop_assert_eq!(gpu.mem_free_mib + held.iter().map(|s| s.mem_mib).sum::<u64>(), gpu.mem_total_mib);
                    prop_assert_eq!(gpu.core_free + held.iter().map(|s| s.core_milli).sum::<u32>(), 1000);
                    prop_assert_eq!(gpu.slots_free as usize + held.len(), gpu.slots_total as usize);
                }
            }
        }
        let sources: Vec<NodeSource> = ["a", "b"].iter().map(|n| NodeSource { name: n.to_string(), zone: None, inventory: testing::gpus(n, 2, "T4", 16384) }).collect();
        let assignments: Vec<(String, Assignment)> = live.iter().map(|p| {
            let node = ledger.node_of(p).unwrap();
            (p.clone(), node.to_assignment(&node.holders()[p].placement))
        }).collect();
        let (rebuilt, rejected) = rebuild(4, &sources, assignments.iter().map(|(p, a)| (p.as_str(), a, RunAs::Unstated)));
        prop_assert!(rejected.is_empty());
        prop_assert!(rebuilt.same_state(&ledger));
    }
}
