use super::*;
use crate::frag::TypicalPods;
use crate::ledger::HostCapacity;
use crate::request::{ContainerDemand, GpuDemand, Group};
use crate::testing;

fn cluster() -> (ClusterLedger, Spread) {
    let mut ledger = ClusterLedger::new(10);
    for (name, gpus, zone) in [("node-1", 4, "a"), ("node-2", 4, "b"), ("node-3", 8, "c")] {
        ledger.upsert_node(
            name,
            Some(zone.into()),
            &testing::gpus(name, gpus, "T4", 16384),
            HostCapacity::untracked(),
        );
    }
    // node-1 nearly full, node-2 half used.
    for g in 0..4 {
        testing::hold(
            ledger.node_mut("node-1").unwrap(),
            &format!("a{g}"),
            g,
            15000,
            900,
        );
    }
    testing::hold(ledger.node_mut("node-2").unwrap(), "b0", 0, 8000, 500);
    let mut spread = Spread::default();
    spread.set_zones(["a", "b", "c"]);
    (ledger, spread)
}

fn share(mem: u64, core: u32) -> PodRequest {
    PodRequest {
        containers: vec![ContainerDemand {
            container: "main".into(),
            demand: GpuDemand {
                gpus: 1,
                mem_mib: mem,
                mem_percent: 0,
                core_milli: core,
            },
        }],
        ..Default::default()
    }
}

fn view_of<'a>(
    ledger: &'a ClusterLedger,
    spread: &'a Spread,
    mix: &'a TypicalPods,
    policy: Policy,
) -> View<'a> {
    View {
        ledger,
        spread,
        policy,
        ctx: ScoreContext::new(mix),
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn filter_passes_fitting_nodes_and_names_why_the_others_fail() {
    let (ledger, spread) = cluster();
    let mix = TypicalPods::default();
    let view = view_of(&ledger, &spread, &mix, Policy::Fragmentation);
    let out = filter(
        view,
        &share(4096, 300),
        &names(&["node-1", "node-2", "node-3", "node-4"]),
    );
    assert_eq!(out.passed, names(&["node-2", "node-3"]));
    assert!(
        out.failed["node-1"].contains("GPU-node-1-0: 1384 MiB free, needs 4096"),
        "{:?}",
        out.failed
    );
    assert_eq!(
        out.unresolvable["node-4"],
        "node node-4 has no Tessera GPU inventory"
    );
}

#[test]
fn pass_through_pods_pass_everywhere_without_lookups() {
    let (ledger, spread) = cluster();
    let mix = TypicalPods::default();
    let view = view_of(&ledger, &spread, &mix, Policy::Binpack);
    let all = names(&["node-1", "unknown"]);
    assert_eq!(filter(view, &PodRequest::default(), &all).passed, all);
}

#[test]
fn quorum_members_are_filtered_and_spread_members_ranked() {
    let (ledger, mut spread) = cluster();
    let group = Group {
        key: "mw/zk".into(),
        quorum: true,
        size: Some(3),
    };
    spread.add(&group, ledger.node("node-3").unwrap());
    let mix = TypicalPods::default();
    let view = view_of(&ledger, &spread, &mix, Policy::Binpack);
    let pod = PodRequest {
        group: Some(group),
        ..Default::default()
    };
    let out = filter(view, &pod, &names(&["node-2", "node-3"]));
    assert_eq!(out.passed, names(&["node-2"]));
    assert!(out.failed["node-3"].contains("quorum group mw/zk would have 2 of 3"));
    let ranked = prioritize(view, &pod, &names(&["node-2", "node-3"]));
    assert_eq!(
        ranked,
        vec![("node-2".to_string(), 10), ("node-3".to_string(), 0)]
    );
}

#[test]
fn prioritize_follows_the_policy_on_the_zero_to_ten_scale() {
    let (ledger, spread) = cluster();
    let mix = TypicalPods::default();
    let view = view_of(&ledger, &spread, &mix, Policy::Binpack);
    let ranked = prioritize(
        view,
        &share(2048, 100),
        &names(&["node-3", "node-2", "node-1"]),
    );
    // Binpack: the fuller node-2 beats the idle node-3; node-1 cannot take it.
    assert_eq!(
        ranked,
        vec![
            ("node-3".to_string(), 4),
            ("node-2".to_string(), 10),
            ("node-1".to_string(), 0)
        ]
    );
}

#[test]
fn assign_picks_gpus_on_the_bound_node_and_annotations_round_trip() {
    let (ledger, spread) = cluster();
    let mix = TypicalPods::default();
    let view = view_of(&ledger, &spread, &mix, Policy::Binpack);
    let (index, placement) = assign(view, &share(4096, 300), "node-2").unwrap();
    assert_eq!(ledger.nodes()[index].name, "node-2");
    let assignment = ledger.nodes()[index].to_assignment(&placement);
    // Binpack takes the half-used GPU 0.
    assert_eq!(assignment.containers[0].gpus[0].uuid, "GPU-node-2-0");
    let writer = crate::annotations::Writer {
        holder: "tessera-extender-0".into(),
        term: 7,
    };
    let notes = bind_annotations(&assignment, "2026-11-23T20:02:26Z", &writer);
    assert_eq!(
        notes[crate::keys::ANNOTATION_ASSIGNED_BY],
        "tessera-extender-0@7"
    );
    assert_eq!(notes[crate::keys::ANNOTATION_BIND_PHASE], "allocating");
    assert_eq!(
        notes[crate::keys::ANNOTATION_BIND_TIME],
        "2026-11-23T20:02:26Z"
    );
    assert_eq!(
        crate::annotations::decode_assignment(&notes[crate::keys::ANNOTATION_GPU_ASSIGNMENT])
            .unwrap(),
        assignment
    );
    assert!(matches!(
        assign(view, &share(4096, 300), "node-1"),
        Err(BindRefusal::Unfit(_))
    ));
    assert_eq!(
        assign(view, &share(1, 1), "node-9")
            .unwrap_err()
            .to_string(),
        "node node-9 has no Tessera GPU inventory"
    );
}

mod memo {
    use proptest::prelude::*;

    use super::*;
    use crate::frag::TypicalPod;

    fn mix() -> TypicalPods {
        TypicalPods {
            classes: vec![TypicalPod {
                cpu_milli: 0,
                demand: GpuDemand {
                    gpus: 1,
                    mem_mib: 4096,
                    mem_percent: 0,
                    core_milli: 250,
                },
                models: vec![],
                weight: 1.0,
            }],
            cpu_per_gpu_milli: None,
            refill: Default::default(),
        }
    }

    /// A change to the cluster between two requests.
    #[derive(Debug, Clone)]
    enum Change {
        Hold(usize, usize, u64, u32),
        Release(usize),
        AddNode,
        RemoveNode(usize),
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            4 => (0..4usize, 0..4usize, 1..9000u64, 1..600u32)
                .prop_map(|(n, g, m, c)| Change::Hold(n, g, m, c)),
            2 => (0..40usize).prop_map(Change::Release),
            1 => Just(Change::AddNode),
            1 => (0..4usize).prop_map(Change::RemoveNode),
        ]
    }

    proptest! {
        /// Answers from a memo kept across requests and cluster changes are exactly the
        /// answers computed from scratch.
        #[test]
        fn remembered_answers_equal_fresh_ones(
            changes in prop::collection::vec(change(), 1..40),
            shapes in prop::collection::vec((1..9000u64, 1..1000u32), 1..4),
        ) {
            let (mut ledger, spread) = cluster();
            let mix = mix();
            let mut memo = Memo::default();
            let mut held = 0;
            for ch in &changes {
                match ch {
                    Change::Hold(n, g, mem, core) => {
                        let name = ledger.nodes().get(*n).map(|x| x.name.clone());
                        if let Some(node) = name.and_then(|name| ledger.node_mut(&name))
                            && *g < node.gpus.len()
                            && node.gpus[*g].mem_free_mib >= *mem
                            && node.gpus[*g].core_free >= *core
                        {
                            testing::hold(node, &format!("p{held}"), *g, *mem, *core);
                            held += 1;
                        }
                    }
                    Change::Release(p) => {
                        for i in 0..ledger.nodes().len() {
                            let name = ledger.nodes()[i].name.clone();
                            ledger.node_mut(&name).unwrap().release(&format!("p{p}"));
                        }
                    }
                    Change::AddNode => {
                        let name = format!("extra-{}", ledger.nodes().len());
                        ledger.upsert_node(&name, None, &testing::gpus(&name, 2, "T4", 16384), HostCapacity::untracked());
                    }
                    Change::RemoveNode(n) => {
                        if let Some(name) = ledger.nodes().get(*n).map(|x| x.name.clone()) {
                            ledger.remove_node(&name);
                        }
                    }
                }
                let names: Vec<String> = ledger.nodes().iter().map(|n| n.name.clone()).collect();
                for (mem, core) in &shapes {
                    let pod = share(*mem, *core);
                    let view = view_of(&ledger, &spread, &mix, Policy::Fragmentation);
                    prop_assert_eq!(filter_with(view, &pod, names.clone(), &mut memo), filter(view, &pod, &names));
                    prop_assert_eq!(prioritize_with(view, &pod, names.clone(), &mut memo), prioritize(view, &pod, &names));
                }
            }
        }
    }
}
