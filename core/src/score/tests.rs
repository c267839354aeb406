use super::*;
use crate::frag::TypicalPod;
use crate::ledger::HostCapacity;
use crate::request::{ContainerDemand, GpuDemand};
use crate::testing;

fn pod(milli: u32, gpus: u32) -> PodRequest {
    PodRequest {
        containers: vec![ContainerDemand {
            container: "main".into(),
            demand: GpuDemand {
                gpus,
                mem_mib: 0,
                mem_percent: 0,
                core_milli: milli,
            },
        }],
        ..Default::default()
    }
}

fn used(name: &str, core: &[u32]) -> NodeLedger {
    let mut n = testing::node(name, core.len() as u32, "T4", 16384);
    for (i, c) in core.iter().enumerate().filter(|(_, c)| **c > 0) {
        testing::hold(&mut n, &format!("{name}-{i}"), i, 0, *c);
    }
    n
}

/// A mix of single-GPU classes without host CPU, by (per-GPU compute, weight).
fn gpu_mix(classes: &[(u32, f64)]) -> TypicalPods {
    let class = |&(milli, weight): &(u32, f64)| TypicalPod {
        cpu_milli: 0,
        demand: GpuDemand {
            gpus: 1,
            mem_mib: 0,
            mem_percent: 0,
            core_milli: milli,
        },
        models: vec![],
        weight,
    };
    TypicalPods {
        classes: classes.iter().map(class).collect(),
        cpu_per_gpu_milli: None,
        refill: Default::default(),
    }
}

fn mix() -> TypicalPods {
    gpu_mix(&[(500, 0.5), (1000, 0.5)])
}

#[test]
fn policy_names_round_trip_and_unknown_names_list_the_known_ones() {
    for p in Policy::ALL {
        assert_eq!(Policy::parse(p.name()), Ok(p));
    }
    let err = Policy::parse("tetris").unwrap_err().to_string();
    assert!(
        err.starts_with("unknown policy \"tetris\"; known: fragmentation, binpack"),
        "{err}"
    );
}

#[test]
fn binpack_prefers_the_fuller_node_and_spread_the_emptier() {
    let (full, empty) = (used("full", &[600, 0]), used("empty", &[0, 0]));
    let mix = TypicalPods::default();
    let ctx = ScoreContext::new(&mix);
    let s = |p, n: &NodeLedger| score(p, n, &pod(200, 1), ctx).unwrap().score;
    assert!(s(Policy::Binpack, &full) > s(Policy::Binpack, &empty));
    assert!(s(Policy::Spread, &full) < s(Policy::Spread, &empty));
}

#[test]
fn fragmentation_fills_the_gpu_whose_leftover_nobody_else_could_use() {
    // GPU 0 has 500 free (fits a 500 share exactly); GPU 1 is idle (a whole-GPU pod's home).
    let node = used("n", &[500, 0]);
    let m = mix();
    for policy in [Policy::Fragmentation, Policy::Fgd] {
        let s = score(policy, &node, &pod(500, 1), ScoreContext::new(&m)).unwrap();
        assert_eq!(s.placement.containers[0].shares[0].gpu, 0, "{policy}");
    }
    // And prefers that node over an idle one.
    let idle = used("idle", &[0, 0]);
    let ours = |n: &NodeLedger| {
        score(
            Policy::Fragmentation,
            n,
            &pod(500, 1),
            ScoreContext::new(&m),
        )
        .unwrap()
        .score
    };
    assert!(ours(&node) > ours(&idle));
}

#[test]
fn first_fit_takes_the_lowest_gpu_that_fits_where_fragmentation_fills_the_half_used_one() {
    // GPU 0 is idle, GPU 1 has 500 free: the 500 share fills GPU 1 exactly under Tessera's
    // choice and keeps GPU 0 whole; kube-scheduler's DRA allocator would take GPU 0.
    let node = used("n", &[0, 500]);
    let m = mix();
    let ours = score(
        Policy::Fragmentation,
        &node,
        &pod(500, 1),
        ScoreContext::new(&m),
    )
    .unwrap();
    assert_eq!(ours.placement.containers[0].shares[0].gpu, 1);
    let first = fit::place(&node, &pod(500, 1), GpuChoice::FirstFit).unwrap();
    assert_eq!(first.containers[0].shares[0].gpu, 0);
}

fn with_cpu(name: &str, gpus: u32, cores: u64) -> NodeLedger {
    let mut n = testing::node(name, gpus, "T4", 16384);
    n.host = HostCapacity {
        cpu_milli: Some(cores * 1000),
        mem_mib: None,
    };
    n.cpu_free_milli = cores * 1000;
    n
}

fn with_memory(name: &str, gpus: u32, gib: u64) -> NodeLedger {
    let mut n = with_cpu(name, gpus, 64);
    n.host.mem_mib = Some(gib * 1024);
    n.mem_free_mib = gib * 1024;
    n
}

/// Whole-GPU pods of 11 cores, and the cluster's CPU per GPU.
fn whole_gpu_mix(cpu_per_gpu_milli: Option<u64>) -> TypicalPods {
    TypicalPods {
        classes: vec![TypicalPod {
            cpu_milli: 11_000,
            demand: GpuDemand {
                gpus: 1,
                mem_mib: 0,
                mem_percent: 0,
                core_milli: 1000,
            },
            models: vec![],
            weight: 1.0,
        }],
        cpu_per_gpu_milli,
        refill: Default::default(),
    }
}

#[test]
fn fragmentation_keeps_a_cpu_only_pod_off_the_node_whose_cpu_its_gpus_need() {
    // Eight GPUs and 96 cores: whole-GPU pods of 11 cores need 88 of them.
    let dense = with_cpu("dense", 8, 96);
    let roomy = with_cpu("roomy", 2, 104);
    let cpu_only = PodRequest {
        cpu_milli: 32_000,
        ..Default::default()
    };
    let mix = whole_gpu_mix(None);
    let value = |policy, node: &NodeLedger| {
        score_value(policy, node, &cpu_only, ScoreContext::new(&mix)).expect("fits")
    };
    assert!(value(Policy::Fragmentation, &roomy) > value(Policy::Fragmentation, &dense));
    // FGD as published sees one pod's CPU left on both and cannot tell them apart.
    assert_eq!(value(Policy::Fgd, &roomy), value(Policy::Fgd, &dense));
}

#[test]
fn only_cpu_heavy_gpu_pods_are_steered_by_the_counted_host_cpu() {
    // Both nodes keep every free GPU usable on the published measure after one whole-GPU pod;
    // on "dense" the pod's CPU leaves too little for the other seven GPUs' pods.
    let dense = with_cpu("dense", 8, 96);
    let roomy = with_cpu("roomy", 8, 400);
    let whole_gpu = |cores: u64| {
        let mut p = pod(1000, 1);
        p.cpu_milli = cores * 1000;
        p
    };
    let mix = whole_gpu_mix(Some(12_000));
    let gap = |pod: &PodRequest| {
        let value = |n| score_value(Policy::Fragmentation, n, pod, ScoreContext::new(&mix));
        value(&roomy).expect("fits") - value(&dense).expect("fits")
    };
    // 40 cores for one GPU is more than the cluster's 12 per GPU: the counted measure breaks the
    // published tie, by more than any leftover or node rank could.
    assert!(
        gap(&whole_gpu(40)) > super::fragmentation::TIE_SCALE,
        "{}",
        gap(&whole_gpu(40))
    );
    // 11 cores is not: the nodes tie on the published steps and (host memory untracked) only
    // the fixed node rank is left between them.
    assert!(gap(&whole_gpu(11)).abs() < 1.0, "{}", gap(&whole_gpu(11)));
}

#[test]
fn ties_go_to_best_fit_on_host_memory_for_whole_gpus_and_on_gpu_compute_for_shares() {
    let mix = whole_gpu_mix(None);
    let mut whole = pod(1000, 2);
    whole.mem_mib = 64 * 1024;
    let cpu_only = PodRequest {
        cpu_milli: 4_000,
        mem_mib: 8 * 1024,
        ..Default::default()
    };
    let share = pod(300, 1);
    // The names swap between the two rounds, so the fixed node rank favours each node once.
    for (t, r) in [("a", "b"), ("b", "a")] {
        // Both nodes have idle GPUs and tie on the published steps for every pod here.
        let (tight, roomy) = (with_memory(t, 4, 128), with_memory(r, 4, 512));
        let gap = |pod: &PodRequest| {
            let value = |n| score_value(Policy::Fragmentation, n, pod, ScoreContext::new(&mix));
            value(&tight).expect("fits") - value(&roomy).expect("fits")
        };
        // 64 against 448 GiB left (120 against 504 without GPUs): fewer spare wins, by the
        // difference give or take the rank.
        assert!(
            (383.0..385.0).contains(&gap(&whole)),
            "whole GPUs, {t}: {}",
            gap(&whole)
        );
        assert!(
            (383.0..385.0).contains(&gap(&cpu_only)),
            "no GPU, {t}: {}",
            gap(&cpu_only)
        );
        // A share leaves 700 on either node's GPU, and host memory does not decide: the rank does.
        assert!(gap(&share).abs() < 1.0, "share, {t}: {}", gap(&share));
    }
}

#[test]
fn a_share_leaves_room_for_the_frequent_share_rather_than_a_sliver_nothing_fits() {
    // Most pods ask 0.65 of a GPU, the rest whole GPUs. A 0.32 share on the GPU with 0.8 free
    // leaves 0.48, which no class fits; on a fresh GPU it leaves 0.68, which the next 0.65
    // takes. FGD's steps tie, and best fit would take the fuller GPU.
    let mix = gpu_mix(&[(650, 0.7), (1000, 0.3)]);
    let share = pod(320, 1);
    let value = |policy, n: &NodeLedger| {
        score_value(policy, n, &share, ScoreContext::new(&mix)).expect("fits")
    };
    // The names swap between the two rounds, so the fixed node rank favours each node once.
    for (p, f) in [("a", "b"), ("b", "a")] {
        let (partly, fresh) = (used(p, &[200]), used(f, &[0]));
        assert_eq!(value(Policy::Fgd, &partly), value(Policy::Fgd, &fresh));
        assert!(value(Policy::Binpack, &partly) > value(Policy::Binpack, &fresh));
        assert!(
            value(Policy::Fragmentation, &fresh) > value(Policy::Fragmentation, &partly) + 1.0,
            "{p}: the fresh GPU wins by more than the node rank"
        );
    }
    // Within one node, the same GPU is chosen.
    let node = used("n", &[200, 0]);
    let scored = score(
        Policy::Fragmentation,
        &node,
        &share,
        ScoreContext::new(&mix),
    )
    .unwrap();
    let gpus: Vec<usize> = scored.placement.shares().map(|s| s.gpu).collect();
    assert_eq!(gpus, [1]);
}

#[test]
fn published_fgd_scores_are_sigmoid_integers() {
    let node = used("n", &[0, 0]);
    let m = mix();
    let s = score(Policy::Fgd, &node, &pod(500, 1), ScoreContext::new(&m))
        .unwrap()
        .score;
    assert_eq!(s, s.trunc());
    assert!((0.0..=100.0).contains(&s));
}

#[test]
fn infeasible_nodes_give_the_fit_reason_for_every_policy() {
    let node = used("n", &[900]);
    let m = mix();
    for policy in Policy::ALL {
        assert!(
            matches!(
                score(policy, &node, &pod(500, 1), ScoreContext::new(&m)),
                Err(Unfit::Gpus { .. })
            ),
            "{policy}"
        );
    }
}

#[test]
fn a_fresh_fragmentation_cache_changes_no_score_and_a_stale_one_is_ignored() {
    let mut ledger = crate::ledger::ClusterLedger::new(10);
    for (name, load) in [("a", [500u32, 0]), ("b", [250, 750]), ("c", [0, 0])] {
        ledger.upsert_node(
            name,
            None,
            &testing::gpus(name, 2, "T4", 16384),
            crate::ledger::HostCapacity::untracked(),
        );
        for (g, core) in load.iter().enumerate().filter(|(_, c)| **c > 0) {
            testing::hold(
                ledger.node_mut(name).unwrap(),
                &format!("{name}{g}"),
                g,
                0,
                *core,
            );
        }
    }
    let m = mix();
    let mut cache = crate::frag::FragCache::default();
    cache.refresh(&ledger, &m);
    // Change node a after the refresh: its entry is stale and must not be used.
    testing::hold(ledger.node_mut("a").unwrap(), "late", 1, 0, 300);
    let cached = ScoreContext {
        mix: &m,
        frag: Some(&cache),
    };
    for policy in [Policy::Fragmentation, Policy::Fgd] {
        for shape in [pod(250, 1), pod(1000, 1), pod(500, 1)] {
            for node in ledger.nodes() {
                assert_eq!(
                    score(policy, node, &shape, cached).ok(),
                    score(policy, node, &shape, ScoreContext::new(&m)).ok(),
                    "{policy} on {}",
                    node.name
                );
            }
        }
    }
}

/// The extender scores from the fragmentation cache, with its copies of each node's GPUs; the
/// simulator and a cold decision score from the ledger. Both must give every node the same
/// score and GPUs, whatever the node: GPUs alike or not, unhealthy, out of slots, host CPU short.
mod cache_equivalence {
    use proptest::prelude::*;

    use super::*;
    use crate::frag::FragCache;
    use crate::inventory::{GpuInfo, NodeInventory};
    use crate::ledger::{ClusterLedger, HostCapacity};

    /// Per GPU: compute held, memory held, healthy, slots used up.
    type GpuSetup = (u32, u64, bool, bool);

    fn inventory(name: &str, count: usize, alike: bool) -> NodeInventory {
        let gpu = |i: usize| {
            let (model, mem) = if alike || i.is_multiple_of(2) {
                ("T4", 16384)
            } else {
                ("A10", 24576)
            };
            GpuInfo {
                index: i as u32,
                uuid: format!("GPU-{name}-{i}"),
                model: model.into(),
                memory_mib: mem,
                healthy: true,
                mig: false,
                mps: true,
                isolation: crate::inventory::Isolation::MpsMultiUser,
            }
        };
        NodeInventory {
            gpus: (0..count).map(gpu).collect(),
        }
    }

    fn cluster(nodes: &[(bool, u64, Vec<GpuSetup>)]) -> ClusterLedger {
        let mut ledger = ClusterLedger::new(2);
        for (n, (alike, cpu, gpus)) in nodes.iter().enumerate() {
            let name = format!("n{n}");
            let host = HostCapacity {
                cpu_milli: Some(8000),
                mem_mib: None,
            };
            ledger.upsert_node(&name, None, &inventory(&name, gpus.len(), *alike), host);
            let node = ledger.node_mut(&name).unwrap();
            node.cpu_free_milli = *cpu;
            for (g, &(core, mem, healthy, full)) in gpus.iter().enumerate() {
                let mem = mem.min(node.gpus[g].mem_total_mib);
                if core > 0 || mem > 0 {
                    testing::hold(node, &format!("{name}-a{g}"), g, mem, core);
                }
                if full {
                    testing::hold(node, &format!("{name}-b{g}"), g, 0, 0);
                }
                if !healthy {
                    node.set_health(&format!("GPU-{name}-{g}"), false);
                }
            }
        }
        ledger
    }

    fn request(core: u32, mem: u64, gpus: u32, cpu: u64, model: Option<&str>) -> PodRequest {
        let mut p = pod(core, gpus);
        p.containers[0].demand.mem_mib = mem;
        p.cpu_milli = cpu;
        p.models = model.into_iter().map(String::from).collect();
        p
    }

    fn typical(cpu_per_gpu_milli: Option<u64>) -> TypicalPods {
        let class = |cpu, milli, gpus, models: &[&str]| TypicalPod {
            cpu_milli: cpu,
            demand: GpuDemand {
                gpus,
                mem_mib: u64::from(milli) * 8,
                mem_percent: 0,
                core_milli: milli,
            },
            models: models.iter().map(|m| m.to_string()).collect(),
            weight: 0.2,
        };
        TypicalPods {
            classes: vec![
                class(1000, 300, 1, &[]),
                class(2000, 1000, 1, &[]),
                class(4000, 1000, 2, &[]),
                class(1000, 500, 1, &["A10"]),
                class(500, 0, 0, &[]),
            ],
            cpu_per_gpu_milli,
            refill: Default::default(),
        }
    }

    fn gpu_setup() -> impl Strategy<Value = GpuSetup> {
        (
            prop_oneof![Just(0u32), Just(300), Just(500), Just(1000), 0u32..=1000],
            prop_oneof![Just(0u64), 0u64..=24576],
            prop::bool::weighted(0.85),
            prop::bool::weighted(0.15),
        )
    }

    proptest! {
        #[test]
        fn cached_and_uncached_scores_agree(
            nodes in prop::collection::vec(
                (prop::bool::weighted(0.7), 0u64..=8000, prop::collection::vec(gpu_setup(), 0..9)),
                1..6,
            ),
            pods in prop::collection::vec(
                (0u32..=1000, 0u64..=20000, 1u32..=2, 0u64..=6000,
                 prop_oneof![Just(None), Just(Some("T4")), Just(Some("A10"))]),
                1..5,
            ),
            cpu_per_gpu_milli in prop_oneof![Just(None), (0u64..=4000).prop_map(Some)],
        ) {
            let ledger = cluster(&nodes);
            let mix = typical(cpu_per_gpu_milli);
            let mut cache = FragCache::default();
            cache.refresh(&ledger, &mix);
            let cold = ScoreContext::new(&mix);
            let warm = ScoreContext { mix: &mix, frag: Some(&cache) };
            for (core, mem, gpus, cpu, model) in &pods {
                let pod = request(*core, *mem, *gpus, *cpu, *model);
                for policy in [Policy::Fragmentation, Policy::Fgd] {
                    for node in ledger.nodes() {
                        let (a, b) = (score(policy, node, &pod, cold), score(policy, node, &pod, warm));
                        prop_assert_eq!(a, b, "{} on {} for {:?}", policy, node.name, pod);
                    }
                }
            }
        }
    }
}
