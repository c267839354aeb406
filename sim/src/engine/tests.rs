use super::*;
use crate::replay::{trace_ledger, trace_request, typical_mix};
use crate::trace::{TraceNode, TracePod};
use tessera_core::ledger::{ContainerPlacement, Holding, Share};
use tessera_core::request::RunAs;

fn pod(name: &str, gpu_milli: u32) -> TracePod {
    TracePod {
        name: name.into(),
        cpu_milli: 1_000,
        memory_mib: 1024,
        num_gpu: 1,
        gpu_milli,
        gpu_spec: Vec::new(),
    }
}

#[test]
fn the_dra_variant_keeps_the_policys_node_and_takes_the_first_gpu_that_fits() {
    let nodes: Vec<TraceNode> = ["a", "b"]
        .iter()
        .map(|name| TraceNode {
            name: (*name).into(),
            cpu_milli: 32_000,
            memory_mib: 256 * 1024,
            gpus: 2,
            model: "V100".into(),
        })
        .collect();
    let mut ledger = trace_ledger(&nodes);
    // Node a: GPU 1 holds half a GPU, GPU 0 is idle. Node b is idle.
    let half = Holding {
        placement: Placement {
            init: Vec::new(),
            containers: vec![ContainerPlacement {
                container: "main".into(),
                shares: vec![Share {
                    gpu: 1,
                    mem_mib: 0,
                    core_milli: 500,
                }],
            }],
        },
        cpu_milli: 1_000,
        mem_mib: 1024,
        run_as: RunAs::Unstated,
    };
    ledger.apply_at(0, "half", half).unwrap();
    let mix = typical_mix(&[pod("x", 500), pod("y", 1000)], 1.0);
    let request = trace_request(&pod("p", 500));
    let choose = |variant: Variant| {
        let (node, placement) = Chooser::for_variant(variant)
            .choose(
                &ledger,
                &request,
                ScoreContext::new(&mix),
                &mut Rng::new(1),
                &|_| Some(0.0),
            )
            .unwrap();
        (node, placement.shares().map(|s| s.gpu).collect::<Vec<_>>())
    };
    let ours = Variant::ideal(Policy::Fragmentation);
    // Tessera fills the half-used GPU exactly and keeps GPU 0 whole.
    assert_eq!(choose(ours), (0, vec![1]));
    // The same node, but the allocator takes GPU 0, the first that fits.
    assert_eq!(choose(ours.dra_allocator()), (0, vec![0]));
    assert_eq!(ours.dra_allocator().label(), "fragmentation/first-fit");
    assert_eq!(
        Variant::kube_scheduler_dra().label(),
        "kube-scheduler/first-fit"
    );
    assert!(ours.is_plain() && !ours.dra_allocator().is_plain());
}
