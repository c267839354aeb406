use std::path::PathBuf;

use k8s_openapi::api::resource::v1::{
    AllocationResult, DeviceAllocationResult, ResourceClaimStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tessera_core::inventory::Isolation;

use super::*;

const NODE: &str = "node-1";

fn gpu(index: u32, isolation: Isolation) -> GpuInfo {
    GpuInfo {
        index,
        uuid: format!("GPU-{index}"),
        model: "NVIDIA A100".into(),
        memory_mib: 40_960,
        healthy: true,
        mig: false,
        mps: true,
        isolation,
    }
}

fn result(device: &str, consumed: &[(&str, &str)]) -> DeviceRequestAllocationResult {
    DeviceRequestAllocationResult {
        driver: names::DRIVER.into(),
        pool: NODE.into(),
        device: device.into(),
        request: "gpu".into(),
        consumed_capacity: (!consumed.is_empty()).then(|| {
            consumed
                .iter()
                .map(|(k, v)| ((*k).to_string(), Quantity((*v).to_string())))
                .collect()
        }),
        ..Default::default()
    }
}

fn claim(results: Vec<DeviceRequestAllocationResult>) -> ResourceClaim {
    ResourceClaim {
        metadata: ObjectMeta {
            namespace: Some("ml".into()),
            name: Some("small".into()),
            uid: Some("uid-small".into()),
            ..Default::default()
        },
        status: Some(ResourceClaimStatus {
            allocation: Some(AllocationResult {
                devices: Some(DeviceAllocationResult {
                    results: Some(results),
                    config: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn root() -> PathBuf {
    PathBuf::from("/run/tessera/mps")
}

#[test]
fn consumed_capacity_becomes_the_mps_limits_and_mounts() {
    let c = claim(vec![result(
        "gpu-0",
        &[("memory", "8Gi"), ("compute", "25")],
    )]);
    let gpus = [gpu(0, Isolation::MpsMultiUser)];
    let e = claim_edits(&c, NODE, &gpus, Some(&root())).unwrap();
    assert_eq!(e.env[env::NVIDIA_VISIBLE_DEVICES], "GPU-0");
    assert_eq!(e.env[env::CUDA_MPS_PINNED_DEVICE_MEM_LIMIT], "0=8192M");
    assert_eq!(e.env[env::CUDA_MPS_ACTIVE_THREAD_PERCENTAGE], "25");
    assert_eq!(e.env[env::TESSERA_ALLOCATED_FOR], "ml/small");
    assert_eq!(e.env[mps::CUDA_MPS_PIPE_DIRECTORY], "/run/tessera/mps/pipe");
    let paths: Vec<_> = e.mounts.iter().map(|m| m.container_path.clone()).collect();
    assert_eq!(paths, [root().join("pipe"), PathBuf::from("/dev/shm")]);
    assert_eq!(e.allocated[0].share.mem_mib, 8192);
    assert_eq!(e.allocated[0].share.core_milli, 250);
}

#[test]
fn the_env_is_what_allocate_gives_for_the_same_share() {
    let c = claim(vec![result(
        "gpu-0",
        &[("memory", "17179869184"), ("compute", "50")],
    )]);
    let gpus = [gpu(0, Isolation::Mps)];
    let e = claim_edits(&c, NODE, &gpus, Some(&root())).unwrap();
    let share = GpuShare {
        uuid: "GPU-0".into(),
        mem_mib: 16384,
        core_milli: 500,
    };
    let mut expected = env::container_env(std::slice::from_ref(&share), "ml/small");
    let client = mps::client_for(NODE, &[share], &gpus, Some(&root()))
        .unwrap()
        .unwrap();
    expected.extend(client.env);
    assert_eq!(e.env, expected);
    assert_eq!(e.mounts, client.mounts);
}

#[test]
fn a_memory_share_alone_gets_its_memory_limit_and_no_thread_limit() {
    let c = claim(vec![result(
        "gpu-0",
        &[("memory", "4Gi"), ("compute", "0")],
    )]);
    let e = claim_edits(&c, NODE, &[gpu(0, Isolation::Mps)], Some(&root())).unwrap();
    assert_eq!(e.env[env::CUDA_MPS_PINNED_DEVICE_MEM_LIMIT], "0=4096M");
    assert_eq!(e.env.get(env::CUDA_MPS_ACTIVE_THREAD_PERCENTAGE), None);
    assert_eq!(e.allocated[0].share.core_milli, 0);
}

#[test]
fn a_result_without_consumed_capacity_holds_the_whole_gpu() {
    let c = claim(vec![result("gpu-0", &[])]);
    let e = claim_edits(&c, NODE, &[gpu(0, Isolation::Mps)], Some(&root())).unwrap();
    assert_eq!(e.allocated[0].share.mem_mib, 40_960);
    assert_eq!(e.env[env::CUDA_MPS_ACTIVE_THREAD_PERCENTAGE], "100");
}

#[test]
fn other_drivers_and_pools_are_not_ours() {
    let mut foreign = result("gpu-0", &[]);
    foreign.driver = "gpu.nvidia.com".into();
    let mut elsewhere = result("gpu-0", &[]);
    elsewhere.pool = "node-2".into();
    let c = claim(vec![foreign, elsewhere]);
    assert!(matches!(
        claim_edits(&c, NODE, &[gpu(0, Isolation::Mps)], None),
        Err(ClaimRefused::NoDevice { .. })
    ));
}

#[test]
fn refusals_name_what_is_wrong() {
    let gpus = [gpu(0, Isolation::Mps)];
    let mut unallocated = claim(vec![]);
    unallocated.status = None;
    assert!(matches!(
        claim_edits(&unallocated, NODE, &gpus, None),
        Err(ClaimRefused::NotAllocated { .. })
    ));
    let unknown = claim(vec![result("gpu-7", &[])]);
    assert!(matches!(
        claim_edits(&unknown, NODE, &gpus, None),
        Err(ClaimRefused::UnknownDevice { device, .. }) if device == "gpu-7"
    ));
    let fractional = claim(vec![result("gpu-0", &[("compute", "0.5")])]);
    assert!(matches!(
        claim_edits(&fractional, NODE, &gpus, None),
        Err(ClaimRefused::BadQuantity { capacity, .. }) if capacity == "compute"
    ));
}

#[test]
fn a_gpu_whose_mps_daemon_is_down_is_refused_like_allocate_refuses_it() {
    let mut down = gpu(0, Isolation::None);
    down.healthy = false;
    let c = claim(vec![result(
        "gpu-0",
        &[("memory", "8Gi"), ("compute", "25")],
    )]);
    assert!(matches!(
        claim_edits(&c, NODE, &[down], Some(&root())),
        Err(ClaimRefused::Refused {
            reason: ShareRefused::MpsDown { .. },
            ..
        })
    ));
}
