//! Builders for pods, nodes and GPUs, for tests of this and the other crates (feature `testing`):
//! the kernel's pod and inventory builders, and ledger nodes and clusters.

pub use tessera_kernel::testing::*;

use crate::ledger::{HostCapacity, NodeLedger};

/// A node ledger with `count` GPUs and no host accounting.
pub fn node(name: &str, count: u32, model: &str, mem_mib: u64) -> NodeLedger {
    NodeLedger::new(
        name,
        None,
        &gpus(name, count, model, mem_mib),
        HostCapacity::untracked(),
        10,
        crate::ledger::SharingPolicy::IsolatedOnly,
    )
}

/// Records on `node` that `pod` holds `core_milli` of compute and `mem_mib` on GPU `gpu`.
/// Test setup: a refused holding is a broken test, so it panics.
#[allow(clippy::panic)]
pub fn hold(node: &mut NodeLedger, pod: &str, gpu: usize, mem_mib: u64, core_milli: u32) {
    use crate::ledger::{ContainerPlacement, Holding, Placement, Share};
    let share = Share {
        gpu,
        mem_mib,
        core_milli,
    };
    let placement = Placement {
        init: Vec::new(),
        containers: vec![ContainerPlacement {
            container: "c".into(),
            shares: vec![share],
        }],
    };
    if let Err(e) = node.apply(
        pod,
        Holding {
            placement,
            cpu_milli: 0,
            mem_mib: 0,
            run_as: crate::request::RunAs::Unstated,
        },
    ) {
        panic!("test setup: {e}");
    }
}

/// A cluster of `nodes` nodes with 8 A100-40GB GPUs each and about `pods_per_node` random
/// shares (5–30% compute, 40 MiB per 0.1%) placed on each, host resources untracked: the
/// extender's view of a large, busy cluster, for benchmarks.
pub fn busy_cluster(nodes: usize, pods_per_node: usize, seed: u64) -> crate::ledger::ClusterLedger {
    use crate::ledger::{ClusterLedger, ContainerPlacement, Holding, Placement, Share};
    let mut ledger = ClusterLedger::new(64);
    let mut rng = crate::rng::Rng::new(seed);
    for n in 0..nodes {
        let name = format!("node-{n}");
        ledger.upsert_node(
            &name,
            None,
            &gpus(&name, 8, "A100", 40960),
            HostCapacity::untracked(),
        );
        for p in 0..pods_per_node {
            let core = 50 * (1 + rng.below(6) as u32);
            let share = Share {
                gpu: rng.below(8) as usize,
                mem_mib: u64::from(core) * 40,
                core_milli: core,
            };
            let placement = Placement {
                init: Vec::new(),
                containers: vec![ContainerPlacement {
                    container: "c".into(),
                    shares: vec![share],
                }],
            };
            // A share that does not fit its GPU is simply skipped.
            let _ = ledger.apply_at(
                n,
                &format!("ns/p-{n}-{p}"),
                Holding {
                    placement,
                    cpu_milli: 0,
                    mem_mib: 0,
                    run_as: crate::request::RunAs::Unstated,
                },
            );
        }
    }
    ledger
}
