use std::collections::BTreeMap;

use super::*;
use crate::inventory::Isolation;

fn resources(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// Resource name and quantity pairs.
type Pairs = &'static [(&'static str, &'static str)];
/// Name, capacity, allocatable, the conflict expected.
type Case = (
    &'static str,
    Pairs,
    Pairs,
    Option<(&'static str, &'static str)>,
);

#[test]
fn a_node_is_refused_while_another_plugin_advertises_its_gpus() {
    let cases: [Case; 8] = [
        (
            "no GPU resource at all",
            &[("cpu", "8")],
            &[("cpu", "8")],
            None,
        ),
        (
            "only Tessera's slots",
            &[("tessera.dev/gpu", "40")],
            &[("tessera.dev/gpu", "40")],
            None,
        ),
        (
            "NVIDIA's plugin registered",
            &[("nvidia.com/gpu", "4")],
            &[("nvidia.com/gpu", "4")],
            Some(("nvidia.com/gpu", "4")),
        ),
        (
            "its devices unhealthy but still in capacity",
            &[("nvidia.com/gpu", "4")],
            &[("nvidia.com/gpu", "0")],
            Some(("nvidia.com/gpu", "4")),
        ),
        (
            "the resource left at zero after the plugin went away",
            &[("nvidia.com/gpu", "0")],
            &[("nvidia.com/gpu", "0")],
            None,
        ),
        (
            "time-slicing renamed the resource",
            &[("nvidia.com/gpu.shared", "16")],
            &[],
            Some(("nvidia.com/gpu.shared", "16")),
        ),
        (
            "MIG devices",
            &[],
            &[("nvidia.com/mig-1g.10gb", "7")],
            Some(("nvidia.com/mig-1g.10gb", "7")),
        ),
        (
            "an unreadable quantity is taken as present",
            &[("nvidia.com/gpu", "lots")],
            &[],
            Some(("nvidia.com/gpu", "lots")),
        ),
    ];
    for (name, capacity, allocatable, want) in cases {
        let got = conflict(&resources(capacity), &resources(allocatable));
        let got = got
            .as_ref()
            .map(|c| (c.resource.as_str(), c.quantity.as_str()));
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn similar_names_of_other_vendors_are_not_foreign_gpus() {
    for name in [
        "nvidia.com/gpumem",
        "nvidia.com/gpucores",
        "amd.com/gpu",
        "tessera.dev/gpu",
    ] {
        assert!(!is_foreign_gpu_resource(name), "{name}");
    }
}

#[test]
fn a_conflict_marks_every_gpu_unhealthy_and_none_leaves_them() {
    let gpu = |uuid: &str| GpuInfo {
        index: 0,
        uuid: uuid.into(),
        model: "H100".into(),
        memory_mib: 81_559,
        healthy: true,
        mig: false,
        mps: true,
        isolation: Isolation::None,
    };
    let mut gpus = vec![gpu("GPU-0"), gpu("GPU-1")];
    apply(&mut gpus, None);
    assert!(gpus.iter().all(|g| g.healthy));
    let c = Conflict {
        resource: NVIDIA_GPU.into(),
        quantity: "2".into(),
    };
    apply(&mut gpus, Some(&c));
    assert!(gpus.iter().all(|g| !g.healthy));
    assert_eq!(
        c.to_string(),
        "node advertises nvidia.com/gpu=2 from another device plugin; Tessera offers no share on \
         a node whose GPUs another plugin hands out (disable that plugin on this node)"
    );
}
