use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::ledger::HostCapacity;
use crate::testing;

fn class(cpu: u64, milli: u32, gpus: u32, models: &[&str], weight: f64) -> TypicalPod {
    TypicalPod {
        cpu_milli: cpu,
        demand: GpuDemand {
            gpus,
            mem_mib: 0,
            mem_percent: 0,
            core_milli: milli,
        },
        models: models.iter().map(|m| m.to_string()).collect(),
        weight,
    }
}

/// A mix of `classes` without the cluster's CPU per GPU.
fn mix_of(classes: Vec<TypicalPod>) -> TypicalPods {
    TypicalPods {
        classes,
        cpu_per_gpu_milli: None,
        refill: Default::default(),
    }
}

fn node_with(used: &[u32], cpu: Option<u64>) -> NodeLedger {
    let mut n = testing::node("n", used.len() as u32, "T4", 16384);
    n.host = HostCapacity {
        cpu_milli: cpu,
        mem_mib: None,
    };
    n.cpu_free_milli = cpu.unwrap_or(u64::MAX);
    for (i, u) in used.iter().enumerate().filter(|(_, u)| **u > 0) {
        testing::hold(&mut n, &format!("p{i}"), i, 0, *u);
    }
    n
}

#[test]
fn measure_follows_the_published_cases() {
    // Two GPUs: 300 and 800 free (700 and 200 used).
    let node = node_with(&[700, 200], Some(8000));
    let one = |c: TypicalPod| NodeFrag::new(&node, &mix_of(vec![c])).frag.published;
    assert_eq!(
        one(class(1000, 0, 0, &[], 1.0)),
        1100.0,
        "CPU-only: all idle GPU is fragmented"
    );
    assert_eq!(
        one(class(1000, 500, 1, &[], 1.0)),
        300.0,
        "fits: only GPUs too small for the share"
    );
    assert_eq!(
        one(class(1000, 900, 1, &[], 1.0)),
        1100.0,
        "no GPU big enough: all idle"
    );
    assert_eq!(
        one(class(9000, 500, 1, &[], 1.0)),
        1100.0,
        "not enough host CPU: all idle"
    );
    assert_eq!(
        one(class(1000, 500, 1, &["A100"], 1.0)),
        1100.0,
        "wrong model: all idle"
    );
    assert_eq!(
        one(class(1000, 1000, 1, &[], 1.0)),
        1100.0,
        "whole GPU needs an idle GPU"
    );
    let mix = mix_of(vec![class(0, 500, 1, &[], 0.25), class(0, 0, 0, &[], 0.75)]);
    assert_eq!(
        NodeFrag::new(&node, &mix).frag.published,
        0.25 * 300.0 + 0.75 * 1100.0
    );
}

#[test]
fn counting_host_cpu_strands_the_gpus_beyond_what_the_cpu_holds() {
    // Eight idle GPUs, 24 cores: whole-GPU pods of 10 cores fit two at a time.
    let node = node_with(&[0; 8], Some(24_000));
    let measure = |node: &NodeLedger| {
        let mix = mix_of(vec![class(10_000, 1000, 1, &[], 1.0)]);
        NodeFrag::new(node, &mix).frag
    };
    assert_eq!(
        measure(&node).published,
        0.0,
        "FGD: one pod's CPU is free, nothing fragmented"
    );
    assert_eq!(
        measure(&node).counted,
        6000.0,
        "counted: six GPUs the CPU cannot feed"
    );
    // With the CPU for all eight, counting changes nothing.
    let roomy = node_with(&[0; 8], Some(80_000));
    assert_eq!(measure(&roomy).counted, 0.0);
}

#[test]
fn cluster_cpu_per_gpu_counts_only_gpu_nodes_with_known_cpu() {
    let eight = node_with(&[0; 8], Some(96_000));
    let two = node_with(&[0; 2], Some(104_000));
    let untracked = node_with(&[0; 2], None);
    // 200 cores over 10 GPUs; the node without tracked CPU adds neither.
    assert_eq!(cpu_per_gpu([&eight, &two, &untracked]), Some(20_000));
    assert_eq!(cpu_per_gpu([&untracked]), None);
}

#[test]
fn typical_mix_takes_most_frequent_classes_up_to_coverage() {
    let mut counts: HashMap<ClassKey, u64> = HashMap::new();
    counts.insert((1, 500, 1, 0, vec![]), 60);
    counts.insert((1, 1000, 1, 0, vec![]), 35);
    counts.insert((1, 100, 1, 0, vec![]), 5);
    let mix = TypicalPods::from_counts(counts, 0.95);
    assert_eq!(mix.classes.len(), 2, "60 + 35 reaches 95% inclusively");
    assert!((mix.classes[0].weight - 60.0 / 95.0).abs() < 1e-12);
    assert_eq!(mix.classes[1].demand.core_milli, 1000);
}

#[test]
fn refill_table_follows_the_offer_model() {
    // 0.65 shares ask 70% of the GPU compute, whole GPUs 30%.
    let mix = mix_of(vec![
        class(0, 650, 1, &[], 0.7),
        class(0, 1000, 1, &[], 0.3),
    ]);
    let t = mix.refill();
    let near = |f: u32, expected: f64| {
        assert!(
            (t.idle(f) - expected).abs() < 1e-3,
            "idle({f}) = {}, expected {expected}",
            t.idle(f)
        );
    };
    near(0, 0.0);
    near(480, 480.0); // nothing fits
    near(680, 0.7 * 30.0 + 0.3 * 680.0); // a 0.65 share, else the offer ends
    near(800, 0.7 * 150.0 + 0.3 * 800.0);
    near(1000, 0.3 * 0.0 + 0.7 * 350.0);
    assert!((t.change(800, 480) - (480.0 - 345.0)).abs() < 1e-3);
    assert!((t.change(1000, 680) - (225.0 - 245.0)).abs() < 1e-3);
    assert_eq!(
        t.idle(5000),
        t.idle(1000),
        "more than one GPU free reads as one GPU"
    );
}

#[test]
fn refill_weighs_classes_by_the_gpus_they_take_and_ignores_those_without_compute() {
    let one = mix_of(vec![
        class(0, 650, 1, &[], 0.7),
        class(0, 1000, 1, &[], 0.3),
    ]);
    // Half as many pods of two whole GPUs ask as much, and CPU-only pods ask none.
    let same = mix_of(vec![
        class(0, 650, 1, &[], 0.7),
        class(0, 1000, 2, &[], 0.15),
        class(4000, 0, 0, &[], 0.5),
    ]);
    assert_eq!(one.refill(), same.refill());
    let cpu_only = mix_of(vec![class(4000, 0, 0, &[], 1.0)]);
    for f in [0, 190, 530, 1000] {
        assert_eq!(
            cpu_only.refill().idle(f),
            f64::from(f),
            "nothing refills {f}"
        );
    }
}

#[test]
fn a_copied_mix_works_its_refill_table_out_again() {
    let mix = mix_of(vec![class(0, 500, 1, &[], 1.0)]);
    assert_eq!(mix.refill().idle(1000), 0.0);
    assert_eq!(
        mix.clone(),
        mix,
        "the table takes no part in comparing mixes"
    );
    let mut copy = mix.clone();
    copy.classes[0].demand.core_milli = 600;
    assert_eq!(copy.refill().idle(1000), 400.0, "the copy's own classes");
    assert_eq!(mix.refill().idle(1000), 0.0);
}

proptest! {
    #[test]
    fn one_gpu_update_equals_recomputing_from_scratch(
        used in prop::collection::vec(0u32..=1000, 1..8),
        gpu_pick in 0usize..8,
        take in 0u32..=1000,
        cpu in 0u64..10_000,
        classes in prop::collection::vec((0u64..8000, 0u32..=1000, 0u32..3), 1..6),
    ) {
        let node = node_with(&used, Some(8000));
        let mix = mix_of(classes.iter().map(|(c, m, g)| class(*c, *m, *g, &[], 0.3)).collect());
        let gpu = gpu_pick % used.len();
        let core_after = node.gpus[gpu].core_free.saturating_sub(take);
        let fast = NodeFrag::new(&node, &mix).after_one(&node, gpu, core_after, node.gpus[gpu].mem_free_mib, cpu, &mix);
        let mut frees: Vec<(u32, u64)> = node.gpus.iter().map(|g| (g.core_free, g.mem_free_mib)).collect();
        frees[gpu].0 = core_after;
        let slow = frag_of(&node, &frees, 8000u64.saturating_sub(cpu), &mix);
        prop_assert!((fast.published - slow.published).abs() < 1e-6, "{fast:?} vs {slow:?}");
        prop_assert!((fast.counted - slow.counted).abs() < 1e-6, "{fast:?} vs {slow:?}");
        prop_assert!(fast.counted >= fast.published - 1e-6, "counting only adds: {fast:?}");
    }

    #[test]
    fn refill_never_exceeds_what_is_free(
        classes in prop::collection::vec((0u32..=1000, 0u32..4, 0.01f64..1.0), 1..12),
        free in 0u32..=1000,
    ) {
        let mix = mix_of(classes.iter().map(|(m, g, w)| class(0, *m, *g, &[], *w)).collect());
        let idle = mix.refill().idle(free);
        prop_assert!((-1e-3..=f64::from(free) + 1e-3).contains(&idle), "idle({free}) = {idle}");
    }
}
