//! The CDI spec of one prepared claim (Container Device Interface, spec version 0.6.0): the
//! container runtime applies a device's `containerEdits` to every container the kubelet asks
//! for it by its fully qualified ID `gpu.tessera.dev/claim=<name>`.
//!
//! One spec file per claim, one CDI device per allocation result. Every device of a claim
//! carries the claim's whole edits (env for all its GPUs, the MPS mounts): CDI refuses a device
//! without edits, and the same env and mount applied twice is the same container. The GPU
//! itself reaches the container as it does with the device plugin: `NVIDIA_VISIBLE_DEVICES`,
//! read by the NVIDIA container runtime.

use serde::{Deserialize, Serialize};

use crate::decide::share::ClaimEdits;
use crate::names;

/// A CDI spec file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// CDI spec version.
    pub cdi_version: String,
    /// `vendor/class`.
    pub kind: String,
    /// The devices.
    pub devices: Vec<CdiDevice>,
}

/// One CDI device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CdiDevice {
    /// Name, unique in the kind.
    pub name: String,
    /// What the runtime does to a container that gets it.
    pub container_edits: ContainerEdits,
}

/// CDI container edits (the parts Tessera uses).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerEdits {
    /// `KEY=VALUE` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Bind mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<CdiMount>,
}

/// A CDI bind mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CdiMount {
    /// Path on the node.
    pub host_path: String,
    /// Path in the container.
    pub container_path: String,
    /// Mount options.
    pub options: Vec<String>,
}

/// The spec file name of claim `uid` (CDI reads `*.json` in its spec directories).
pub fn file_name(uid: &str) -> String {
    format!("{}-claim_{uid}.json", names::DRIVER)
}

/// The CDI device name of the `n`th result of claim `uid`.
pub fn device_name(uid: &str, n: usize) -> String {
    format!("{uid}-{n}")
}

/// The fully qualified ID the kubelet hands the runtime.
pub fn qualified_id(name: &str) -> String {
    format!("{}={name}", names::CDI_KIND)
}

/// The spec for claim `uid` with `edits`.
pub fn spec(uid: &str, edits: &ClaimEdits) -> Spec {
    let container_edits = ContainerEdits {
        env: edits.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        mounts: edits
            .mounts
            .iter()
            .map(|m| CdiMount {
                host_path: m.host_path.display().to_string(),
                container_path: m.container_path.display().to_string(),
                options: vec!["rbind".into(), if m.read_only { "ro" } else { "rw" }.into()],
            })
            .collect(),
    };
    Spec {
        cdi_version: names::CDI_VERSION.into(),
        kind: names::CDI_KIND.into(),
        devices: (0..edits.allocated.len())
            .map(|n| CdiDevice {
                name: device_name(uid, n),
                container_edits: container_edits.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use tessera_core::annotations::GpuShare;
    use tessera_core::plugin::mps::MountSpec;

    use super::*;
    use crate::decide::share::Allocated;

    fn edits(results: usize) -> ClaimEdits {
        let allocated = (0..results)
            .map(|i| Allocated {
                request: "gpu".into(),
                pool: "node-1".into(),
                device: format!("gpu-{i}"),
                share: GpuShare {
                    uuid: format!("GPU-{i}"),
                    mem_mib: 8192,
                    core_milli: 250,
                },
            })
            .collect();
        ClaimEdits {
            allocated,
            env: BTreeMap::from([("A".into(), "1".into()), ("B".into(), "x=y".into())]),
            mounts: vec![MountSpec {
                host_path: PathBuf::from("/run/tessera/mps/shm"),
                container_path: PathBuf::from("/dev/shm"),
                read_only: false,
            }],
        }
    }

    #[test]
    fn spec_has_one_device_per_result_each_with_the_claims_edits() {
        let s = spec("uid-1", &edits(2));
        assert_eq!(
            (s.cdi_version.as_str(), s.kind.as_str()),
            ("0.6.0", "gpu.tessera.dev/claim")
        );
        let names: Vec<_> = s.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["uid-1-0", "uid-1-1"]);
        let e = &s.devices[1].container_edits;
        assert_eq!(e.env, ["A=1", "B=x=y"]);
        assert_eq!(e.mounts[0].container_path, "/dev/shm");
        assert_eq!(e.mounts[0].options, ["rbind", "rw"]);
    }

    #[test]
    fn spec_serialises_with_cdi_field_names() {
        let json = serde_json::to_value(spec("uid-1", &edits(1))).unwrap();
        assert_eq!(json["cdiVersion"], "0.6.0");
        assert_eq!(
            json["devices"][0]["containerEdits"]["mounts"][0]["hostPath"],
            "/run/tessera/mps/shm"
        );
        assert_eq!(qualified_id("uid-1-0"), "gpu.tessera.dev/claim=uid-1-0");
        assert_eq!(file_name("uid-1"), "gpu.tessera.dev-claim_uid-1.json");
    }
}
