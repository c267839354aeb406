use proptest::prelude::*;

use super::*;
use crate::annotations::{Assignment, ContainerAssignment, GpuShare, Writer};
use crate::ledger::{ContainerPlacement, Holding, LedgerError, Placement, Share};
use crate::testing;

fn node(name: &str, gpus: u32, zone: &str) -> NodeFacts {
    NodeFacts {
        name: name.into(),
        zone: Some(zone.into()),
        inventory: testing::gpus(name, gpus, "T4", 16384),
        inventory_error: None,
        heartbeat: Some(1_000),
    }
}

fn assignment(node: &str, gpu: u32, mem_mib: u64, core_milli: u32) -> Assignment {
    Assignment {
        node: node.into(),
        containers: vec![ContainerAssignment {
            container: "main".into(),
            init: false,
            gpus: vec![GpuShare {
                uuid: format!("GPU-{node}-{gpu}"),
                mem_mib,
                core_milli,
            }],
        }],
    }
}

/// A pod bound to `node` whose assignment annotation gives it one share of GPU `gpu`.
fn held(key: &str, node: &str, gpu: u32, mem_mib: u64, core_milli: u32) -> PodFacts {
    pod(
        key,
        Some(node),
        Some(assignment(node, gpu, mem_mib, core_milli)),
    )
}

fn pod(key: &str, bound: Option<&str>, a: Option<Assignment>) -> PodFacts {
    PodFacts {
        key: key.into(),
        uid: format!("uid-{key}"),
        priority: 0,
        node: bound.map(str::to_string),
        assignment: a,
        assignment_error: None,
        group: None,
        terminal: false,
        run_as: crate::request::RunAs::Unstated,
        origin: Origin::default(),
    }
}

fn mem_free(c: &Cluster, node: &str, gpu: usize) -> u64 {
    c.ledger.node(node).unwrap().gpus[gpu].mem_free_mib
}

#[test]
fn a_pod_seen_before_its_node_counts_once_the_node_arrives() {
    let mut c = Cluster::new(10);
    let notices = c.apply_pod(held("ns/a", "n1", 1, 4000, 300));
    assert!(
        matches!(notices[..], [Notice::Unplaced { .. }]),
        "{notices:?}"
    );
    assert_eq!(c.unplaced_pods(), vec!["ns/a".to_string()]);
    assert!(c.apply_node(node("n1", 2, "z1")).is_empty());
    assert_eq!(mem_free(&c, "n1", 1), 16384 - 4000);
    assert!(c.unplaced_pods().is_empty());
}

#[test]
fn deleted_and_finished_pods_free_their_shares() {
    let mut c = Cluster::new(10);
    c.apply_node(node("n1", 1, "z1"));
    c.apply_pod(held("ns/a", "n1", 0, 4000, 300));
    c.apply_pod(held("ns/b", "n1", 0, 2000, 300));
    assert_eq!(mem_free(&c, "n1", 0), 16384 - 6000);
    c.remove_pod("ns/a");
    assert_eq!(mem_free(&c, "n1", 0), 16384 - 2000);
    let mut done = held("ns/b", "n1", 0, 2000, 300);
    done.terminal = true;
    c.apply_pod(done);
    assert_eq!(mem_free(&c, "n1", 0), 16384);
    assert_eq!(c.tracked_pods(), 0);
}

fn reserve(c: &mut Cluster, key: &str, gpu: usize, mem_mib: u64, deadline_ms: u64) {
    let mut holding = holding(mem_mib, 300);
    holding.placement.containers[0].shares[0].gpu = gpu;
    let index = c.ledger.node_index("n1").unwrap();
    c.reservations
        .reserve(&mut c.ledger, key, index, holding, deadline_ms)
        .unwrap();
}

/// One container's share of GPU 0.
fn holding(mem_mib: u64, core_milli: u32) -> Holding {
    Holding {
        placement: Placement {
            init: Vec::new(),
            containers: vec![ContainerPlacement {
                container: "main".into(),
                shares: vec![Share {
                    gpu: 0,
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

#[test]
fn a_reservation_survives_the_annotation_patch_and_is_confirmed_by_the_binding() {
    let mut c = Cluster::new(10);
    c.apply_node(node("n1", 1, "z1"));
    reserve(&mut c, "ns/a", 0, 4000, 100);
    // Bind patches the annotation first: the watch shows it before spec.nodeName.
    c.apply_pod(pod("ns/a", None, Some(assignment("n1", 0, 4000, 300))));
    assert_eq!(mem_free(&c, "n1", 0), 16384 - 4000, "reservation kept");
    assert!(c.reservations.is_pending("ns/a"));
    // Then the Binding: confirmed, counted once, and no longer subject to the timeout.
    c.apply_pod(held("ns/a", "n1", 0, 4000, 300));
    assert!(!c.reservations.is_pending("ns/a"));
    assert_eq!(mem_free(&c, "n1", 0), 16384 - 4000);
    assert!(c.reservations.expire(&mut c.ledger, 1_000).is_empty());
    assert_eq!(mem_free(&c, "n1", 0), 16384 - 4000);
}

fn writer(holder: &str, term: u64) -> Writer {
    Writer {
        holder: holder.into(),
        term,
    }
}

/// `pod` as written by `by` at `bind_time` (seconds).
fn written(mut facts: PodFacts, by: &Writer, bind_time: i64) -> PodFacts {
    facts.origin = Origin {
        writer: Some(by.clone()),
        bind_time: Some(bind_time),
    };
    facts
}

const NOW_S: i64 = 1_800_000_000;

fn judge(leading: Option<&Writer>) -> Judge<'_> {
    Judge {
        leading,
        now_s: NOW_S,
        timeout_s: 120,
    }
}

#[test]
fn the_leader_removes_its_own_failed_binds_once_no_reservation_is_pending() {
    let me = writer("ext-a", 3);
    let mut c = Cluster::new(10);
    c.apply_node(node("n1", 1, "z1"));
    let annotated = written(
        pod("ns/a", None, Some(assignment("n1", 0, 4000, 300))),
        &me,
        NOW_S,
    );
    // Bind in flight: the annotation is written, the Binding is not yet.
    reserve(&mut c, "ns/a", 0, 4000, 100);
    c.apply_pod(annotated.clone());
    assert!(!c.is_stale_assignment(&annotated, &judge(Some(&me))));
    // The reservation ran out (the Binding failed, or the pod never showed up).
    c.reservations.expire(&mut c.ledger, 1_000);
    assert!(c.is_stale_assignment(&annotated, &judge(Some(&me))));
    assert!(
        !c.is_stale_assignment(&annotated, &judge(None)),
        "a standby removes nothing"
    );
    assert_eq!(mem_free(&c, "n1", 0), 16384, "never counted");
    // Bound, finished, or not annotated: nothing to remove.
    let bound = written(held("ns/a", "n1", 0, 4000, 300), &me, NOW_S);
    assert!(!c.is_stale_assignment(&bound, &judge(Some(&me))));
    let mut done = annotated.clone();
    done.terminal = true;
    assert!(!c.is_stale_assignment(&done, &judge(Some(&me))));
    assert!(!c.is_stale_assignment(&pod("ns/a", None, None), &judge(Some(&me))));
    // An annotation that cannot be read (and so names no writer) is as stale as one that can.
    let unreadable = PodFacts {
        assignment: None,
        assignment_error: Some("bad version".into()),
        origin: Origin::default(),
        ..annotated
    };
    assert!(c.is_stale_assignment(&unreadable, &judge(Some(&me))));
}

#[test]
fn another_terms_bind_in_flight_is_reserved_until_its_timeout_then_stale() {
    let old = writer("ext-a", 3);
    let me = writer("ext-b", 4);
    let mut c = Cluster::new(10);
    c.apply_node(node("n1", 1, "z1"));
    // The deposed leader wrote the annotation 30 s ago; its Binding may still come.
    let in_flight = written(
        pod("ns/a", None, Some(assignment("n1", 0, 12000, 600))),
        &old,
        NOW_S - 30,
    );
    c.apply_pod(in_flight.clone());
    assert!(!c.is_stale_assignment(&in_flight, &judge(Some(&me))));
    assert!(c.adopt_in_flight(&in_flight, &judge(Some(&me)), 5_000));
    assert_eq!(mem_free(&c, "n1", 0), 16384 - 12000, "its share is held");
    assert!(
        !c.adopt_in_flight(&in_flight, &judge(Some(&me)), 5_000),
        "once"
    );
    // So a bind of this term cannot take the same memory.
    let err = c
        .reservations
        .reserve(&mut c.ledger, "ns/b", 0, holding(8000, 300), 9_000)
        .unwrap_err();
    assert!(matches!(err, LedgerError::OverCommit { .. }), "{err}");
    // Its Binding lands: held for good, no longer subject to the timeout.
    c.apply_pod(written(held("ns/a", "n1", 0, 12000, 600), &old, NOW_S - 30));
    assert!(!c.reservations.is_pending("ns/a"));
    assert_eq!(mem_free(&c, "n1", 0), 16384 - 12000);
}

#[test]
fn a_bind_that_never_lands_is_released_when_its_timeout_passes() {
    let old = writer("ext-a", 3);
    let me = writer("ext-b", 4);
    let mut c = Cluster::new(10);
    c.apply_node(node("n1", 1, "z1"));
    let in_flight = written(
        pod("ns/a", None, Some(assignment("n1", 0, 4000, 300))),
        &old,
        NOW_S - 100,
    );
    c.apply_pod(in_flight.clone());
    // 20 s of its 120 s are left: due 20 s from now on the reservations' clock.
    assert!(c.adopt_in_flight(&in_flight, &judge(None), 5_000));
    assert!(c.reservations.expire(&mut c.ledger, 24_999).is_empty());
    assert_eq!(c.reservations.expire(&mut c.ledger, 25_000), vec!["ns/a"]);
    assert_eq!(mem_free(&c, "n1", 0), 16384);
    let later = Judge {
        now_s: NOW_S + 20,
        ..judge(Some(&me))
    };
    assert!(c.is_stale_assignment(&in_flight, &later));
    assert!(
        !c.adopt_in_flight(&in_flight, &later, 25_000),
        "past its time"
    );
    // The same replica's own assignment of an earlier term is another term's too.
    let mine_before = written(in_flight.clone(), &writer("ext-b", 2), NOW_S - 10);
    assert!(!c.is_stale_assignment(&mine_before, &judge(Some(&me))));
    // No bind time: age unknown, treated as old.
    let mut undated = in_flight;
    undated.origin.bind_time = None;
    assert!(c.is_stale_assignment(&undated, &judge(Some(&me))));
}

#[test]
fn writers_round_trip_and_bad_ones_are_refused() {
    let w = writer("tessera-extender-5d8f-x2", 12);
    assert_eq!(w.encode(), "tessera-extender-5d8f-x2@12");
    assert_eq!(Writer::decode(&w.encode()), Ok(w));
    for bad in ["", "x", "@3", "x@", "x@-1", "x@three"] {
        assert!(Writer::decode(bad).is_err(), "{bad}");
    }
}

#[test]
fn an_update_from_before_the_annotation_keeps_a_bind_in_flight() {
    // kube-scheduler's status write from an earlier, failed attempt (no annotation, no node)
    // can reach the watch after bind reserved the share; dropping the reservation then would
    // let another bind take the same GPU.
    let mut c = Cluster::new(10);
    c.apply_node(node("n1", 1, "z1"));
    reserve(&mut c, "ns/a", 0, 4000, 100);
    c.apply_pod(pod("ns/a", None, None));
    assert_eq!(mem_free(&c, "n1", 0), 16384 - 4000, "reservation kept");
    assert!(c.reservations.is_pending("ns/a"));
    c.apply_pod(held("ns/a", "n1", 0, 4000, 300));
    assert_eq!(mem_free(&c, "n1", 0), 16384 - 4000, "counted once");
    assert!(!c.reservations.is_pending("ns/a"));
}

#[test]
fn deleting_a_pod_with_a_reservation_releases_it() {
    let mut c = Cluster::new(10);
    c.apply_node(node("n1", 1, "z1"));
    reserve(&mut c, "ns/a", 0, 4000, 100);
    c.remove_pod("ns/a");
    assert_eq!(mem_free(&c, "n1", 0), 16384);
    assert!(c.reservations.is_empty());
}

#[test]
fn a_corrected_swap_of_two_pods_ends_with_both_counted() {
    // The device plugin found that two same-size pods got each other's GPU and rewrites both
    // annotations; the watch delivers them one at a time.
    let mut c = Cluster::new(10);
    c.apply_node(node("n1", 2, "z1"));
    c.apply_pod(held("ns/a", "n1", 0, 16384, 1000));
    c.apply_pod(held("ns/b", "n1", 1, 16384, 1000));
    let notices = c.apply_pod(held("ns/a", "n1", 1, 16384, 1000));
    assert_eq!(notices.len(), 1, "a waits for b: {notices:?}");
    assert!(c.apply_pod(held("ns/b", "n1", 0, 16384, 1000)).is_empty());
    assert!(c.unplaced_pods().is_empty());
    let n1 = c.ledger.node("n1").unwrap();
    assert_eq!(n1.holders().len(), 2);
    assert_eq!(n1.gpus[0].mem_free_mib + n1.gpus[1].mem_free_mib, 0);
}

#[test]
fn an_assignment_for_another_node_is_reported_and_not_counted() {
    let mut c = Cluster::new(10);
    c.apply_node(node("n1", 1, "z1"));
    c.apply_node(node("n2", 1, "z1"));
    let notices = c.apply_pod(pod(
        "ns/a",
        Some("n2"),
        Some(assignment("n1", 0, 4000, 300)),
    ));
    assert!(
        matches!(notices[..], [Notice::NodeMismatch { .. }]),
        "{notices:?}"
    );
    assert_eq!(mem_free(&c, "n1", 0), 16384);
}

#[test]
fn group_members_count_once_whether_bind_or_the_watch_reports_them_first() {
    let mut c = Cluster::new(10);
    c.apply_node(node("n1", 0, "z1"));
    let group = crate::request::Group {
        key: "ns/zk".into(),
        quorum: true,
        size: Some(3),
    };
    c.record_member("ns/zk-0", group.clone(), "n1");
    let mut facts = pod("ns/zk-0", Some("n1"), None);
    facts.group = Some(group.clone());
    c.apply_pod(facts);
    let n1 = c.ledger.node("n1").unwrap().clone();
    // One member of three on n1: a second would make half or more.
    assert!(c.spread.check(&group, &n1).is_err());
    c.remove_pod("ns/zk-0");
    assert!(c.spread.check(&group, &n1).is_ok());
}

#[test]
fn heartbeats_gate_gpu_nodes_only() {
    let mut c = Cluster::new(10);
    c.apply_node(node("n1", 1, "z1"));
    c.apply_node(node("cpu", 0, "z1"));
    let mut silent = node("n2", 1, "z1");
    silent.heartbeat = None;
    c.apply_node(silent);
    assert!(c.check_heartbeat("n1", 1_060, 60).is_ok());
    let err = c.check_heartbeat("n1", 1_061, 60).unwrap_err();
    assert_eq!(
        err.to_string(),
        "GPU inventory heartbeat of node n1 is 61s old (limit 60s)"
    );
    assert!(matches!(
        c.check_heartbeat("n2", 1_000, 60),
        Err(Stale::Missing { .. })
    ));
    assert!(c.check_heartbeat("cpu", 99_999, 60).is_ok());
    // A heartbeat-only update refreshes the time and nothing else.
    let mut beat = node("n1", 1, "z1");
    beat.heartbeat = Some(2_000);
    let version = c.ledger.node("n1").unwrap().version;
    c.apply_node(beat);
    assert!(c.check_heartbeat("n1", 2_030, 60).is_ok());
    assert_eq!(c.ledger.node("n1").unwrap().version, version);
}

#[test]
fn an_unreadable_inventory_is_reported_and_the_node_offers_no_gpu() {
    let mut annotations = std::collections::BTreeMap::new();
    annotations.insert(
        crate::keys::ANNOTATION_GPU_INVENTORY.to_string(),
        "{not json".to_string(),
    );
    let facts = NodeFacts::from_metadata("n1", None, Some(&annotations));
    let mut c = Cluster::new(10);
    let notices = c.apply_node(facts);
    assert!(matches!(&notices[..], [Notice::InvalidInventory { node, .. }] if node == "n1"));
    assert!(c.ledger.node("n1").unwrap().gpus.is_empty());
}

#[test]
fn the_mix_follows_what_pods_hold() {
    let mut c = Cluster::new(10);
    c.apply_node(node("n1", 2, "z1"));
    c.apply_pod(held("ns/a", "n1", 0, 4000, 300));
    c.apply_pod(held("ns/b", "n1", 1, 4000, 300));
    c.apply_pod(held("ns/c", "n1", 1, 8000, 500));
    c.refresh_mix();
    let weights: Vec<(u32, u64, f64)> = c
        .mix
        .classes
        .iter()
        .map(|k| (k.demand.core_milli, k.demand.mem_mib, k.weight))
        .collect();
    assert_eq!(weights[0].0, 300);
    assert_eq!(weights[0].1, 4000);
    assert!((weights[0].2 - 2.0 / 3.0).abs() < 1e-9, "{weights:?}");
}

/// Assignments that over-commit a GPU together: whatever order their events come in, and in a
/// rebuild, the same pods count (settled by name) and the rest wait, none over-committed.
#[test]
fn over_committing_assignments_count_the_same_pods_in_any_event_order() {
    let pods = [("ns/a", 9000), ("ns/b", 6000), ("ns/c", 3000)];
    let mut outcomes = Vec::new();
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]] {
        for node_first in [true, false] {
            let mut c = Cluster::new(4);
            if node_first {
                c.apply_node(node("n1", 1, "z1"));
            }
            for &i in &order {
                let (key, mem) = pods[i];
                c.apply_pod(pod(key, Some("n1"), Some(assignment("n1", 0, mem, 100))));
            }
            if !node_first {
                c.apply_node(node("n1", 1, "z1"));
            }
            let n1 = c.ledger.node("n1").unwrap();
            assert!(n1.gpus[0].mem_free_mib <= n1.gpus[0].mem_total_mib);
            outcomes.push((
                n1.holders().keys().cloned().collect::<Vec<_>>(),
                c.unplaced_pods(),
            ));
        }
    }
    // By name: a (9000) and b (6000) fit in 16384 MiB; c (3000) would make 18000.
    let expected = (
        vec!["ns/a".to_string(), "ns/b".to_string()],
        vec!["ns/c".to_string()],
    );
    assert!(outcomes.iter().all(|o| *o == expected), "{outcomes:?}");
}

/// One watch event.
#[derive(Debug, Clone)]
enum Event {
    Node(usize, u32),
    NodeGone(usize),
    Pod(usize, Option<usize>, usize, u64),
    PodGone(usize),
    PodDone(usize),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0..3usize, 0..3u32).prop_map(|(n, g)| Event::Node(n, g)),
        (0..3usize).prop_map(Event::NodeGone),
        (
            0..8usize,
            proptest::option::of(0..3usize),
            0..2usize,
            1..9000u64
        )
            .prop_map(|(p, n, g, m)| Event::Pod(p, n, g, m)),
        (0..8usize).prop_map(Event::PodGone),
        (0..8usize).prop_map(Event::PodDone),
    ]
}

fn apply(c: &mut Cluster, e: &Event) {
    let node_name = |n: usize| format!("n{n}");
    match e {
        Event::Node(n, gpus) => {
            c.apply_node(node(
                &node_name(*n),
                *gpus,
                if *n == 0 { "z1" } else { "z2" },
            ));
        }
        Event::NodeGone(n) => c.remove_node(&node_name(*n)),
        Event::Pod(p, n, gpu, mem) => {
            let bound = n.map(node_name);
            let a = bound
                .as_deref()
                .map(|b| assignment(b, u32::try_from(*gpu).unwrap(), *mem, 100));
            let mut facts = pod(&format!("ns/p{p}"), bound.as_deref(), a);
            facts.group = (p % 2 == 0).then(|| crate::request::Group {
                key: "ns/g".into(),
                quorum: false,
                size: None,
            });
            c.apply_pod(facts);
        }
        Event::PodGone(p) => c.remove_pod(&format!("ns/p{p}")),
        Event::PodDone(p) => {
            let mut facts = pod(&format!("ns/p{p}"), None, None);
            facts.terminal = true;
            c.apply_pod(facts);
        }
    }
}

proptest! {
    /// Whatever order the watches deliver events in, the live state equals a rebuild from the
    /// objects that exist at the end (what a restarted extender would see), and no GPU is ever
    /// over-committed.
    #[test]
    fn live_state_equals_a_rebuild_from_the_final_objects(events in prop::collection::vec(event(), 0..60)) {
        let mut live = Cluster::new(4);
        for e in &events {
            apply(&mut live, e);
            for n in live.ledger.nodes() {
                for g in &n.gpus {
                    prop_assert!(g.mem_free_mib <= g.mem_total_mib);
                }
            }
        }
        live.refresh_mix();
        let nodes: Vec<NodeFacts> = live.nodes.values().cloned().collect();
        let pods: Vec<PodFacts> = live.pods.values().cloned().collect();
        let (rebuilt, _) = Cluster::rebuild(4, nodes, pods);
        prop_assert!(live.ledger.same_state(&rebuilt.ledger), "ledger differs");
        prop_assert_eq!(&live.spread, &rebuilt.spread);
        prop_assert_eq!(&live.members, &rebuilt.members);
        prop_assert!(live.same_state(&rebuilt));
    }
}

#[test]
fn usage_reports_allocation_isolation_and_heartbeat_per_node_and_model() {
    let mut c = Cluster::new(4);
    let mut a = node("a", 2, "z1");
    a.inventory.gpus[0].isolation = crate::inventory::Isolation::None;
    a.inventory.gpus[1].isolation = crate::inventory::Isolation::MpsMultiUser;
    a.heartbeat = Some(990);
    c.apply_node(a);
    let mut b = node("b", 1, "z1");
    b.inventory.gpus[0].model = "A100".into();
    b.heartbeat = None;
    c.apply_node(b);
    c.apply_pod(held("ns/p", "a", 1, 4096, 250));
    c.refresh_frag();

    let usage = c.usage();
    assert_eq!(usage.len(), 2, "{usage:?}");
    let a = &usage[0];
    assert_eq!((a.node.as_str(), a.model.as_str()), ("a", "T4"));
    assert_eq!((a.gpus, a.healthy), (2, 2));
    assert_eq!(a.mem_total_mib, 2 * 16384);
    assert_eq!(a.mem_allocated_mib, 4096);
    assert_eq!(a.compute_allocated_milli, 250);
    assert_eq!(
        (
            a.isolation.none,
            a.isolation.mps,
            a.isolation.mps_multi_user
        ),
        (1, 0, 1)
    );
    let b = &usage[1];
    assert_eq!((b.node.as_str(), b.model.as_str()), ("b", "A100"));
    assert_eq!((b.mem_allocated_mib, b.compute_allocated_milli), (0, 0));

    assert_eq!(c.heartbeat_ages(1_000), vec![("a".to_string(), 10)]);
}
