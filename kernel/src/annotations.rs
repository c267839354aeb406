//! The one codec for everything Tessera writes into annotations: node `gpu-inventory`, pod
//! `gpu-assignment` and the `assigned-by` writer (`holder@term`).
//!
//! Both are versioned JSON documents (`{"version": "v1", …}`) so that a newer writer can change the
//! shape without an older reader misreading it: an unknown version is an error naming it, never a
//! silent default.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::inventory::{GpuInfo, NodeInventory};

/// The version written today.
pub const VERSION: &str = "v1";

/// Why an annotation could not be read.
#[derive(Debug, Error)]
pub enum CodecError {
    /// Not JSON of the expected shape.
    #[error("annotation {key}: {source}")]
    Json {
        /// Annotation key.
        key: &'static str,
        /// Decoder failure.
        #[source]
        source: serde_json::Error,
    },
    /// A version this build does not know.
    #[error("annotation {key}: unsupported version {version:?} (this build reads {VERSION:?})")]
    Version {
        /// Annotation key.
        key: &'static str,
        /// The version found.
        version: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Versioned<T> {
    version: String,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize, Deserialize)]
struct InventoryBody {
    gpus: Vec<GpuInfo>,
}

/// The GPU share one container holds on one GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuShare {
    /// GPU UUID.
    pub uuid: String,
    /// MiB of GPU memory reserved.
    pub mem_mib: u64,
    /// Thousandths of the GPU's compute (1000: exclusive).
    pub core_milli: u32,
}

/// The GPUs one container was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerAssignment {
    /// Container name.
    pub container: String,
    /// One share per GPU, distinct GPUs.
    pub gpus: Vec<GpuShare>,
    /// An ordinary init container (`"init": true`): it holds its share only while it runs,
    /// alone, before the app containers, so the ledger charges it by the init rule instead of
    /// adding it up. Absent (false) for app containers and native sidecars, so assignments
    /// written before init containers were placed read as they always did, and a reader that
    /// does not know the field adds it up, which over-reserves but never over-commits.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
}

/// What the extender assigned to a pod: the value of `tessera.dev/gpu-assignment`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Assignment {
    /// Node the pod was bound to.
    pub node: String,
    /// Per container that asked for GPUs.
    pub containers: Vec<ContainerAssignment>,
}

impl Assignment {
    /// Every share in the assignment.
    pub fn shares(&self) -> impl Iterator<Item = &GpuShare> {
        self.containers.iter().flat_map(|c| c.gpus.iter())
    }
}

fn decode<T: for<'de> Deserialize<'de>>(key: &'static str, text: &str) -> Result<T, CodecError> {
    #[derive(Deserialize)]
    struct VersionOnly {
        version: String,
    }
    let head: VersionOnly =
        serde_json::from_str(text).map_err(|source| CodecError::Json { key, source })?;
    if head.version != VERSION {
        return Err(CodecError::Version {
            key,
            version: head.version,
        });
    }
    let full: Versioned<T> =
        serde_json::from_str(text).map_err(|source| CodecError::Json { key, source })?;
    Ok(full.body)
}

fn encode<T: Serialize>(body: T) -> String {
    let doc = Versioned {
        version: VERSION.to_string(),
        body,
    };
    // Serialising plain structs of strings and integers cannot fail.
    serde_json::to_string(&doc).unwrap_or_default()
}

/// Encodes a node's inventory for `tessera.dev/gpu-inventory`.
pub fn encode_inventory(inventory: &NodeInventory) -> String {
    encode(InventoryBody {
        gpus: inventory.gpus.clone(),
    })
}

/// Decodes `tessera.dev/gpu-inventory`.
pub fn decode_inventory(text: &str) -> Result<NodeInventory, CodecError> {
    let body: InventoryBody = decode(crate::keys::ANNOTATION_GPU_INVENTORY, text)?;
    Ok(NodeInventory { gpus: body.gpus })
}

/// Encodes a pod's assignment for `tessera.dev/gpu-assignment`.
pub fn encode_assignment(assignment: &Assignment) -> String {
    encode(assignment)
}

/// Decodes `tessera.dev/gpu-assignment`.
pub fn decode_assignment(text: &str) -> Result<Assignment, CodecError> {
    decode(crate::keys::ANNOTATION_GPU_ASSIGNMENT, text)
}

/// The leader and Lease term that wrote an assignment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Writer {
    /// The Lease holder's identity.
    pub holder: String,
    /// The Lease's `leaseTransitions` when it became the holder.
    pub term: u64,
}

impl Writer {
    /// `holder@term`, as in the annotation.
    pub fn encode(&self) -> String {
        format!("{}@{}", self.holder, self.term)
    }

    /// Reads `holder@term` (identities are pod or host names, which have no `@`).
    pub fn decode(text: &str) -> Result<Writer, String> {
        let bad = || format!("`{text}` is not holder@term");
        let (holder, term) = text.rsplit_once('@').ok_or_else(bad)?;
        if holder.is_empty() {
            return Err(bad());
        }
        Ok(Writer {
            holder: holder.to_string(),
            term: term.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Isolation;
    use proptest::prelude::*;

    fn sample_assignment() -> Assignment {
        Assignment {
            node: "gpu-1".into(),
            containers: vec![ContainerAssignment {
                container: "train".into(),
                init: false,
                gpus: vec![GpuShare {
                    uuid: "GPU-aaaa".into(),
                    mem_mib: 4096,
                    core_milli: 300,
                }],
            }],
        }
    }

    #[test]
    fn assignment_golden_json_is_stable() {
        let text = encode_assignment(&sample_assignment());
        let want = serde_json::json!({
            "version": "v1",
            "node": "gpu-1",
            "containers": [{"container": "train", "gpus": [{"uuid": "GPU-aaaa", "memMib": 4096, "coreMilli": 300}]}]
        });
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            want
        );
    }

    #[test]
    fn inventory_golden_json_is_stable() {
        let inv = crate::testing::gpus("n1", 1, "A100", 40960);
        let text = encode_inventory(&inv);
        let want = serde_json::json!({
            "version": "v1",
            "gpus": [{"index": 0, "uuid": "GPU-n1-0", "model": "A100", "memoryMib": 40960, "healthy": true, "mig": false, "mps": true, "isolation": "mpsMultiUser"}]
        });
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            want
        );
    }

    #[test]
    fn an_inventory_from_before_isolation_reads_as_not_isolated() {
        // Written by a device plugin older than the MPS daemon: no share there is enforced.
        let old = r#"{"version":"v1","gpus":[{"index":0,"uuid":"GPU-a","model":"A100","memoryMib":40960,"healthy":true,"mig":false,"mps":true}]}"#;
        let inv = decode_inventory(old).unwrap();
        assert_eq!(inv.gpus[0].isolation, Isolation::None);
    }

    #[test]
    fn unknown_version_and_bad_json_are_named() {
        let err = decode_assignment(r#"{"version":"v9","node":"x","containers":[]}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "annotation tessera.dev/gpu-assignment: unsupported version \"v9\" (this build reads \"v1\")"
        );
        let err = decode_inventory("{not json").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("annotation tessera.dev/gpu-inventory:"),
            "{err}"
        );
    }

    proptest! {
        #[test]
        fn assignment_round_trips(node in "[a-z0-9-]{1,20}", shares in prop::collection::vec(("[A-Za-z0-9-]{1,40}", 0u64..1_000_000, 0u32..=1000), 0..8)) {
            let a = Assignment {
                node,
                containers: vec![ContainerAssignment {
                    container: "c".into(),
                    init: false,
                    gpus: shares.into_iter().map(|(uuid, mem_mib, core_milli)| GpuShare { uuid, mem_mib, core_milli }).collect(),
                }],
            };
            prop_assert_eq!(decode_assignment(&encode_assignment(&a)).unwrap(), a);
        }

        #[test]
        fn inventory_round_trips(gpus in prop::collection::vec(("[A-Za-z0-9 -]{1,30}", 0u64..200_000, any::<bool>(), any::<bool>(), 0u8..3), 0..16)) {
            let isolations = [Isolation::None, Isolation::Mps, Isolation::MpsMultiUser];
            let inv = NodeInventory { gpus: gpus.into_iter().enumerate().map(|(i, (model, memory_mib, healthy, mig, iso))| GpuInfo {
                index: i as u32, uuid: format!("GPU-{i}"), model, memory_mib, healthy, mig, mps: !mig,
                isolation: isolations[usize::from(iso)],
            }).collect() };
            prop_assert_eq!(decode_inventory(&encode_inventory(&inv)).unwrap(), inv);
        }
    }
}
