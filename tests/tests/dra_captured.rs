//! The ResourceClaims and the ResourceSlice a real v1.36.2 apiserver served in `dra_rewrite_e2e`
//! (captured with `TESSERA_E2E_CAPTURE_DIR`: three shares of one GPU, 8 GiB / 25%, 16 GiB / 50%
//! and 4 GiB / 0%, allocated by the real scheduler from the slice the real plugin published),
//! read by both sides of the DRA path: the plugin's prepare decision and the extender's ledger.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceSlice};
use serde::de::DeserializeOwned;
use tessera_core::dra::{ClaimFacts, DraCluster, SliceFacts};
use tessera_core::inventory::{GpuInfo, Isolation};
use tessera_core::ledger::SharingPolicy;
use tessera_core::plugin::env;
use tessera_dra_plugin::decide::share::claim_edits;

fn read<T: DeserializeOwned>(name: &str) -> T {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/dra/captured")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// (file, consumed MiB, compute percent)
const CLAIMS: [(&str, u64, u32); 3] = [
    ("resourceclaim.tessera-8gi-25.json", 8192, 25),
    ("resourceclaim.hami-16gi-50.json", 16384, 50),
    ("resourceclaim.memory-4gi-0.json", 4096, 0),
];

fn slice() -> ResourceSlice {
    read("resourceslice.node-1.json")
}

/// The node's GPU as the plugin's NVML discovery reports it: the slice's device.
fn gpu(slice: &ResourceSlice) -> GpuInfo {
    let device = &slice.spec.devices.as_ref().unwrap()[0];
    let attributes = device.attributes.as_ref().unwrap();
    let memory = &device.capacity.as_ref().unwrap()["memory"].value.0;
    GpuInfo {
        index: 0,
        uuid: attributes["uuid"].string.clone().unwrap(),
        model: attributes["productName"].string.clone().unwrap(),
        memory_mib: memory.parse::<u64>().unwrap() >> 20,
        healthy: true,
        mig: false,
        mps: true,
        isolation: Isolation::MpsMultiUser,
    }
}

#[test]
fn the_plugin_prepares_each_captured_claim_with_the_limits_it_consumed() {
    let slice = slice();
    let node = slice.spec.node_name.clone().unwrap();
    let gpus = [gpu(&slice)];
    let root = PathBuf::from("/run/tessera/mps");
    for (file, mib, percent) in CLAIMS {
        let claim: ResourceClaim = read(file);
        let edits = claim_edits(&claim, &node, &gpus, Some(&root)).unwrap();
        assert_eq!(
            edits.env[env::NVIDIA_VISIBLE_DEVICES],
            gpus[0].uuid,
            "{file}"
        );
        assert_eq!(
            edits.env[env::CUDA_MPS_PINNED_DEVICE_MEM_LIMIT],
            format!("0={mib}M"),
            "{file}"
        );
        let threads = edits.env.get(env::CUDA_MPS_ACTIVE_THREAD_PERCENTAGE);
        let want = (percent > 0).then(|| percent.to_string());
        assert_eq!(threads, want.as_ref(), "{file}");
    }
}

#[test]
fn the_extenders_ledger_holds_the_three_shares_on_the_captured_gpu() {
    let slice = slice();
    let node = slice.spec.node_name.clone().unwrap();
    let mut c = DraCluster::new(SharingPolicy::IsolatedOnly);
    assert!(
        c.apply_slice(SliceFacts::from_slice(&slice).unwrap())
            .is_empty()
    );
    for (file, ..) in CLAIMS {
        let claim: ResourceClaim = read(file);
        assert!(
            c.apply_claim(ClaimFacts::from_claim(&claim)).is_empty(),
            "{file}"
        );
    }
    let g = &c.ledger().node(&node).unwrap().gpus[0];
    let (mib, percent) = CLAIMS
        .iter()
        .fold((0, 0), |(m, p), (_, mib, pct)| (m + mib, p + pct));
    assert_eq!(g.mem_total_mib - g.mem_free_mib, mib);
    assert_eq!(1000 - g.core_free, percent * 10);
}
