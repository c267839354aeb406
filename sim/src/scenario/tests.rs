use super::*;

fn cluster(yaml_nodes: Vec<NodeSpec>) -> ClusterSpec {
    ClusterSpec {
        version: "v1".into(),
        slots_per_gpu: 10,
        nodes: yaml_nodes,
    }
}

fn gpu_node(name: &str, zone: &str, count: u32) -> NodeSpec {
    NodeSpec {
        name: name.into(),
        count: Some(count),
        zone: Some(zone.into()),
        cpu: "32".into(),
        memory: "128Gi".into(),
        gpus: Some(GpuSpec {
            count: 2,
            model: "T4".into(),
            memory_mib: 16384,
        }),
    }
}

fn workload() -> WorkloadSpec {
    WorkloadSpec {
        version: "v1".into(),
        stateful_sets: vec![StatefulSetSpec {
            name: "zk".into(),
            namespace: "mw".into(),
            replicas: 3,
            quorum: true,
            cpu: "1".into(),
            memory: "1Gi".into(),
            limits: Default::default(),
        }],
        pods: vec![PodTemplate {
            name: "infer".into(),
            namespace: "ml".into(),
            count: 5,
            cpu: "1".into(),
            memory: "1Gi".into(),
            limits: [
                ("tessera.dev/gpu-mem".to_string(), "8192".to_string()),
                ("tessera.dev/gpu-core".to_string(), "50".to_string()),
            ]
            .into(),
            gpu_models: None,
            translate: vec![],
            group: None,
            priority: 0,
        }],
    }
}

#[test]
fn quorum_members_land_in_three_zones_and_shares_never_over_commit() {
    let c = cluster(vec![
        gpu_node("a", "za", 1),
        gpu_node("b", "zb", 1),
        gpu_node("c", "zc", 1),
    ]);
    let o = run(&c, "c.yaml", &workload(), "w.yaml", Policy::Fragmentation).unwrap();
    assert_eq!((o.placed, o.failures.len()), (8, 0));
    assert_eq!(o.violations, Violations::default());
    assert!((o.alloc_pct - 100.0 * 2500.0 / 6000.0).abs() < 1e-9);
}

#[test]
fn a_quorum_group_that_cannot_survive_a_node_loss_is_refused_with_the_reason() {
    let c = cluster(vec![gpu_node("a", "za", 1)]);
    let o = run(&c, "c.yaml", &workload(), "w.yaml", Policy::Binpack).unwrap();
    let zk1 = o
        .failures
        .iter()
        .find(|f| f.pod == "mw/zk-1")
        .expect("zk-1 refused");
    assert!(
        zk1.reason
            .contains("quorum group mw/zk would have 2 of 3 members on node a-1"),
        "{}",
        zk1.reason
    );
}

#[test]
fn bad_files_are_named() {
    let mut c = cluster(vec![gpu_node("a", "za", 1)]);
    c.version = "v0".into();
    let err = run(&c, "c.yaml", &workload(), "w.yaml", Policy::Binpack)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "c.yaml: version \"v0\" is not supported (expected \"v1\")"
    );
    let mut c = cluster(vec![gpu_node("a", "za", 1)]);
    c.nodes[0].cpu = "lots".into();
    let err = run(&c, "c.yaml", &workload(), "w.yaml", Policy::Binpack)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("c.yaml: nodes[a].cpu = \"lots\""), "{err}");
    let mut w = workload();
    w.pods[0].translate = vec!["volcano".into()];
    let c = cluster(vec![gpu_node("a", "za", 1)]);
    let err = run(&c, "c.yaml", &w, "w.yaml", Policy::Binpack)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "w.yaml: pods[infer].translate: \"volcano\" is not one of gpushare, hami"
    );
}

#[test]
fn a_long_reason_is_cut_at_a_word_boundary() {
    let reason = "gpu 0 has 1024 MiB free, 4096 asked; gpu 1 has 2048 MiB free, 4096 asked";
    let short = shorten(reason, 40);
    assert_eq!(short, "gpu 0 has 1024 MiB free, 4096 asked…");
    assert_eq!(shorten("fits", 40), "fits");
}
