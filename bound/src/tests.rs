use tessera_core::rng::Rng;
use tessera_core::score::Policy;
use tessera_sim::engine::Variant;
use tessera_sim::run_replays;

use super::*;

fn node(name: &str, cores: u64, gpus: u32, model: &str) -> TraceNode {
    TraceNode {
        name: name.into(),
        cpu_milli: cores * 1000,
        memory_mib: 64 * 1024,
        gpus,
        model: model.into(),
    }
}

fn pod(name: &str, cores: u64, num_gpu: u32, gpu_milli: u32, spec: &[&str]) -> TracePod {
    TracePod {
        name: name.into(),
        cpu_milli: cores * 1000,
        memory_mib: 1024,
        num_gpu,
        gpu_milli,
        gpu_spec: spec.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn bound_of_a_tiny_cluster_matches_the_hand_count() {
    // Node a: 2 V100s; node b: 1 T4. Three whole-GPU pods that only take a V100 and two
    // 0.6-GPU shares that take any model. A share above half a GPU holds its GPU alone, so the
    // best is both V100s whole (2.0) and one share on the T4 (0.6): 2,600 of 3,000. Without
    // that rule the T4 would take 1.67 shares and the bound would read 3,000.
    let nodes = [node("a", 8, 2, "V100"), node("b", 4, 1, "T4")];
    let pods = [
        pod("w1", 2, 1, 1000, &["V100"]),
        pod("w2", 2, 1, 1000, &["V100"]),
        pod("w3", 2, 1, 1000, &["V100"]),
        pod("s1", 1, 1, 600, &[]),
        pod("s2", 1, 1, 600, &[]),
    ];
    let b = bound(&nodes, &pods).unwrap();
    assert!((b.alloc_milli - 2600.0).abs() < 1e-6, "{b:?}");
    assert_eq!(b.capacity_milli, 3000);
    assert!((b.unallocated_gpus() - 0.4).abs() < 1e-9);
    assert_eq!((b.classes, b.types), (2, 2));
}

#[test]
fn host_cpu_limits_the_bound() {
    // Two cores for four GPUs: half-GPU pods of one core each fill only two halves (1,000 of
    // 4,000); a CPU-only pod is left out rather than counted against the GPUs.
    let nodes = [node("c", 2, 4, "A10")];
    let mut pods: Vec<TracePod> = (0..6)
        .map(|i| pod(&format!("h{i}"), 1, 1, 500, &[]))
        .collect();
    pods.push(pod("cpu", 2, 0, 0, &[]));
    let b = bound(&nodes, &pods).unwrap();
    assert!((b.alloc_milli - 1000.0).abs() < 1e-6, "{b:?}");
    assert!((b.alloc_pct() - 25.0).abs() < 1e-6);
    // A pod larger than every node is never counted.
    let b = bound(&nodes, &[pod("big", 3, 1, 1000, &[])]).unwrap();
    assert_eq!(b.alloc_milli, 0.0);
}

/// A small cluster of three models and a list of shares, whole GPUs and CPU-only pods.
fn small_trace() -> (Vec<TraceNode>, Vec<TracePod>) {
    let nodes = vec![
        node("n1", 32, 8, "V100"),
        node("n2", 32, 8, "V100"),
        node("n3", 16, 4, "T4"),
        node("n4", 16, 4, "T4"),
        node("n5", 96, 2, "A100"),
        node("n6", 8, 2, "A100"),
    ];
    let mut rng = Rng::new(7);
    let pods = (0..40)
        .map(|i| {
            let cores = 1 + rng.below(8);
            match rng.below(4) {
                0 => pod(&format!("p{i:02}"), cores, 0, 0, &[]),
                1 => pod(
                    &format!("p{i:02}"),
                    cores,
                    1,
                    100 * (1 + rng.below(9) as u32),
                    &[],
                ),
                2 => pod(&format!("p{i:02}"), cores, 1 << rng.below(3), 1000, &[]),
                _ => pod(&format!("p{i:02}"), cores, 1, 500, &["T4", "A100"]),
            }
        })
        .collect();
    (nodes, pods)
}

#[test]
fn bound_is_at_least_every_policys_allocation_on_a_small_list() {
    let (nodes, pods) = small_trace();
    let seeds = [42, 43, 44];
    let bounds = per_seed(&nodes, &pods, &seeds, 1.3).unwrap();
    let variants: Vec<Variant> = Policy::ALL.into_iter().map(Variant::ideal).collect();
    let results = run_replays(&nodes, &pods, &variants, &seeds, 2, &|_| {});
    assert_eq!(results.len(), variants.len() * seeds.len());
    for r in &results {
        let (_, b) = bounds.iter().find(|(s, _)| *s == r.seed).unwrap();
        assert!(
            b.alloc_pct() + 1e-6 >= r.alloc_pct_130,
            "{:?} seed {}: bound {} < {}",
            r.variant,
            r.seed,
            b.alloc_pct(),
            r.alloc_pct_130
        );
        let placed_at_end = r.curve.last().unwrap().alloc_pct;
        assert!(b.alloc_pct() + 1e-6 >= placed_at_end);
    }
}
