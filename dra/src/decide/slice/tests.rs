use tessera_core::inventory::Isolation;

use super::*;

fn gpu(index: u32, mps: bool) -> GpuInfo {
    GpuInfo {
        index,
        uuid: format!("GPU-{index}"),
        model: "NVIDIA H200".into(),
        memory_mib: 143_771,
        healthy: true,
        mig: false,
        mps,
        isolation: Isolation::None,
    }
}

fn node(gpus: Vec<GpuInfo>) -> NodeGpus {
    NodeGpus {
        node: "node-1".into(),
        node_uid: "uid-node-1".into(),
        gpus,
        driver_version: Some("580.95.05".into()),
    }
}

fn live(uuids: &[&str]) -> MpsStatus {
    MpsStatus {
        version: "v1".into(),
        gpus: uuids.iter().map(|u| (*u).to_string()).collect(),
        multi_user: true,
        heartbeat: 0,
    }
}

fn devices(s: &ResourceSlice) -> &[Device] {
    s.spec.devices.as_deref().unwrap_or_default()
}

fn taint_keys(d: &Device) -> Vec<&str> {
    d.taints.iter().flatten().map(|t| t.key.as_str()).collect()
}

#[test]
fn slice_is_one_pool_per_node_owned_by_the_node() {
    let s = resource_slice(&node(vec![gpu(0, true)]), None, 3);
    assert_eq!(s.metadata.name.as_deref(), Some("node-1-gpu.tessera.dev"));
    assert_eq!(s.spec.driver, "gpu.tessera.dev");
    assert_eq!(s.spec.node_name.as_deref(), Some("node-1"));
    assert_eq!(s.spec.pool.name, "node-1");
    assert_eq!(
        (s.spec.pool.generation, s.spec.pool.resource_slice_count),
        (3, 1)
    );
    let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Node", "uid-node-1")
    );
}

#[test]
fn every_gpu_is_a_shareable_device_with_its_attributes() {
    let s = resource_slice(
        &node(vec![gpu(0, true), gpu(1, true)]),
        Some(&live(&["GPU-0", "GPU-1"])),
        1,
    );
    let d = &devices(&s)[1];
    assert_eq!(d.name, "gpu-1");
    assert_eq!(d.allow_multiple_allocations, Some(true));
    let a = d.attributes.as_ref().unwrap();
    assert_eq!(a["uuid"].string.as_deref(), Some("GPU-1"));
    assert_eq!(a["productName"].string.as_deref(), Some("NVIDIA H200"));
    assert_eq!(a["driverVersion"].string.as_deref(), Some("580.95.05"));
    assert_eq!(a["index"].int, Some(1));
    assert_eq!(a["mpsIsolation"].bool, Some(true));
    assert_eq!(a["mpsMultiUser"].bool, Some(true));
    assert!(d.taints.is_none());
}

#[test]
fn capacity_policies_are_what_mps_enforces() {
    let s = resource_slice(&node(vec![gpu(0, true)]), Some(&live(&["GPU-0"])), 1);
    let c = devices(&s)[0].capacity.as_ref().unwrap();
    let mem = &c["memory"];
    assert_eq!(mem.value.0, (143_771u64 << 20).to_string());
    let p = mem.request_policy.as_ref().unwrap();
    // 143,771 MiB rounded down to 256 MiB steps: 561 steps.
    assert_eq!(
        p.default.as_ref().unwrap().0,
        ((561u64 * 256) << 20).to_string()
    );
    let r = p.valid_range.as_ref().unwrap();
    assert_eq!(r.min.0, (256u64 << 20).to_string());
    assert_eq!(r.step.as_ref().unwrap().0, (256u64 << 20).to_string());
    let cpu = &c["compute"];
    assert_eq!(cpu.value.0, "100");
    let p = cpu.request_policy.as_ref().unwrap();
    assert_eq!(p.default.as_ref().unwrap().0, "100");
    let r = p.valid_range.as_ref().unwrap();
    // From 0: a memory share alone asks `compute: 0` and holds none.
    assert_eq!(
        (r.min.0.as_str(), r.step.as_ref().unwrap().0.as_str()),
        ("0", "1")
    );
}

#[test]
fn a_gpu_without_a_ready_mps_daemon_is_tainted_mps_not_ready() {
    let s = resource_slice(
        &node(vec![gpu(0, true), gpu(1, true)]),
        Some(&live(&["GPU-0"])),
        1,
    );
    assert!(taint_keys(&devices(&s)[0]).is_empty());
    assert_eq!(
        taint_keys(&devices(&s)[1]),
        vec![names::TAINT_MPS_NOT_READY]
    );
    assert_eq!(
        devices(&s)[1].attributes.as_ref().unwrap()["mpsIsolation"].bool,
        Some(false)
    );
    let none = resource_slice(&node(vec![gpu(0, true)]), None, 1);
    let t = &devices(&none)[0].taints.as_ref().unwrap()[0];
    assert_eq!(
        (t.key.as_str(), t.effect.as_str()),
        (names::TAINT_MPS_NOT_READY, "NoSchedule")
    );
}

#[test]
fn a_gpu_nvml_lost_is_tainted_unhealthy_as_well() {
    let mut lost = gpu(0, true);
    lost.healthy = false;
    let s = resource_slice(&node(vec![lost]), Some(&live(&["GPU-0"])), 1);
    assert_eq!(taint_keys(&devices(&s)[0]), vec![names::TAINT_UNHEALTHY]);
}

#[test]
fn an_unknown_driver_version_is_left_out() {
    let mut n = node(vec![gpu(0, true)]);
    n.driver_version = None;
    let s = resource_slice(&n, None, 1);
    assert!(
        !devices(&s)[0]
            .attributes
            .as_ref()
            .unwrap()
            .contains_key("driverVersion")
    );
}
