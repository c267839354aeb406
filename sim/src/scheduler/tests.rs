use super::*;
use crate::replay::{trace_ledger, trace_request};
use crate::trace::{TraceNode, TracePod};
use tessera_core::ledger::{ContainerPlacement, Holding, Share};
use tessera_core::request::RunAs;

fn nodes(count: usize, gpus: u32) -> Vec<TraceNode> {
    (0..count)
        .map(|i| TraceNode {
            name: format!("n{i:03}"),
            cpu_milli: 32_000,
            memory_mib: 256 * 1024,
            gpus,
            model: "V100".into(),
        })
        .collect()
}

fn share(cpu_milli: u64, gpu_milli: u32) -> PodRequest {
    trace_request(&TracePod {
        name: "p".into(),
        cpu_milli,
        memory_mib: 1024,
        num_gpu: 1,
        gpu_milli,
        gpu_spec: Vec::new(),
    })
}

fn hold(ledger: &mut ClusterLedger, node: usize, pod: &str, cpu_milli: u64, gpu: Option<usize>) {
    let containers = gpu
        .map(|gpu| ContainerPlacement {
            container: "main".into(),
            shares: vec![Share {
                gpu,
                mem_mib: 0,
                core_milli: 500,
            }],
        })
        .into_iter()
        .collect();
    let holding = Holding {
        placement: Placement {
            init: Vec::new(),
            containers,
        },
        cpu_milli,
        mem_mib: 0,
        run_as: RunAs::Unstated,
    };
    ledger.apply_at(node, pod, holding).unwrap();
}

#[test]
fn the_share_of_nodes_searched_follows_kube_schedulers_adaptive_percentage() {
    let cases = [
        ("small clusters are searched whole", 50, 50),
        ("at least 100 nodes", 120, 100),
        ("the trace's 1,213 GPU nodes: 41%", 1213, 497),
        ("never under 5%", 10_000, 500),
    ];
    for (name, all, want) in cases {
        assert_eq!(feasible_to_find(all), want, "{name}");
    }
}

#[test]
fn least_allocated_sends_the_pod_to_the_emptier_node_and_the_first_gpu_that_fits() {
    let mut ledger = trace_ledger(&nodes(2, 2));
    // Node 0 has half its CPU taken; node 1 has a half-used GPU 0 and little CPU taken.
    hold(&mut ledger, 0, "cpu", 16_000, None);
    hold(&mut ledger, 1, "half", 1_000, Some(0));
    let pod = share(1_000, 500);
    assert!(score(&ledger.nodes()[1], &pod) > score(&ledger.nodes()[0], &pod));
    let mut kube = KubeScheduler::default();
    let (node, placement) = kube
        .choose(&ledger, &pod, &mut Rng::new(1), &|_| Some(0.0))
        .unwrap();
    assert_eq!(node, 1);
    // GPU 0 still has 500 free: the allocator takes it, the lowest index that fits.
    let gpus: Vec<usize> = placement.shares().map(|s| s.gpu).collect();
    assert_eq!(gpus, [0]);
}

#[test]
fn each_search_starts_where_the_last_one_stopped_and_vetoed_nodes_never_win() {
    let ledger = trace_ledger(&nodes(150, 1));
    let pod = share(1_000, 100);
    let mut kube = KubeScheduler::default();
    let mut rng = Rng::new(7);
    kube.choose(&ledger, &pod, &mut rng, &|_| Some(0.0))
        .unwrap();
    assert_eq!(kube.next_start, 100, "stopped after 100 feasible nodes");
    kube.choose(&ledger, &pod, &mut rng, &|_| Some(0.0))
        .unwrap();
    assert_eq!(kube.next_start, 50, "wrapped around");
    let only = ledger.node_index("n042").unwrap();
    let veto = |n: &NodeLedger| (n.name == "n042").then_some(0.0);
    let (node, _) = kube.choose(&ledger, &pod, &mut rng, &veto).unwrap();
    assert_eq!(node, only);
}
