//! Slot IDs: the kubelet sees `tessera.dev/gpu` as S slots per healthy physical GPU, and each slot
//! ID names its GPU (`<uuid>::<n>`), so any set of slots says which GPUs it lies on.
//!
//! The kubelet limits a device ID to 63 characters; an NVML UUID is 40 (`GPU-` and 36), leaving
//! room for the separator and the slot number.

use thiserror::Error;

use crate::inventory::GpuInfo;

/// Separator between the GPU UUID and the slot number.
pub const SEPARATOR: &str = "::";
/// Longest device ID the kubelet accepts.
pub const MAX_ID_LEN: usize = 63;

/// A device ID the plugin did not hand out.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SlotError {
    /// Not of the form `<uuid>::<n>`.
    #[error("device ID {id:?} is not a Tessera slot (want <gpu-uuid>::<n>)")]
    Malformed {
        /// The offending ID.
        id: String,
    },
    /// Well formed, but the node has no such GPU or slot.
    #[error("device ID {id:?} names no slot of this node's GPUs")]
    Unknown {
        /// The offending ID.
        id: String,
    },
}

/// One advertised slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Device ID given to the kubelet.
    pub id: String,
    /// UUID of the GPU the slot lies on.
    pub uuid: String,
    /// Whether the kubelet may hand it out.
    pub healthy: bool,
}

/// The ID of slot `n` on GPU `uuid`.
pub fn slot_id(uuid: &str, n: u32) -> String {
    format!("{uuid}{SEPARATOR}{n}")
}

/// Every slot of every GPU, `per_gpu` each, in GPU then slot order. An unhealthy GPU keeps its
/// slots in the list, marked unhealthy, so the kubelet lowers the allocatable count instead of
/// forgetting the devices.
pub fn advertise(gpus: &[GpuInfo], per_gpu: u32) -> Vec<Slot> {
    gpus.iter()
        .flat_map(|gpu| {
            (0..per_gpu).map(move |n| Slot {
                id: slot_id(&gpu.uuid, n),
                uuid: gpu.uuid.clone(),
                healthy: gpu.healthy,
            })
        })
        .collect()
}

/// The GPU UUID and slot number a device ID names, checked against the node's GPUs.
pub fn parse<'a>(id: &'a str, gpus: &[GpuInfo], per_gpu: u32) -> Result<(&'a str, u32), SlotError> {
    let malformed = || SlotError::Malformed { id: id.to_string() };
    let (uuid, n) = id.rsplit_once(SEPARATOR).ok_or_else(malformed)?;
    let n: u32 = n.parse().map_err(|_| malformed())?;
    if uuid.is_empty() {
        return Err(malformed());
    }
    if n >= per_gpu || !gpus.iter().any(|g| g.uuid == uuid) {
        return Err(SlotError::Unknown { id: id.to_string() });
    }
    Ok((uuid, n))
}

/// The distinct GPUs a set of device IDs lies on, in first-seen order.
pub fn gpus_of(ids: &[String], gpus: &[GpuInfo], per_gpu: u32) -> Result<Vec<String>, SlotError> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        let (uuid, _) = parse(id, gpus, per_gpu)?;
        if !out.iter().any(|u| u == uuid) {
            out.push(uuid.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Vec<GpuInfo> {
        crate::testing::gpus("n1", 2, "A100", 40960).gpus
    }

    #[test]
    fn each_gpu_gets_per_gpu_slots_that_name_it() {
        let mut gpus = node();
        gpus[1].healthy = false;
        let slots = advertise(&gpus, 3);
        assert_eq!(slots.len(), 6);
        assert_eq!(slots[0].id, "GPU-n1-0::0");
        assert_eq!(slots[5].id, "GPU-n1-1::2");
        assert!(slots[..3].iter().all(|s| s.healthy));
        assert!(slots[3..].iter().all(|s| !s.healthy));
    }

    #[test]
    fn a_real_uuid_slot_id_fits_the_kubelet_limit() {
        let id = slot_id("GPU-fef8089b-4820-abfc-e83e-94318197576e", 99);
        assert!(id.len() <= MAX_ID_LEN, "{id}");
    }

    #[test]
    fn parse_rejects_foreign_and_out_of_range_ids_by_name() {
        let gpus = node();
        assert_eq!(parse("GPU-n1-1::2", &gpus, 3), Ok(("GPU-n1-1", 2)));
        assert_eq!(
            parse("nvidia0", &gpus, 3).unwrap_err().to_string(),
            "device ID \"nvidia0\" is not a Tessera slot (want <gpu-uuid>::<n>)"
        );
        assert!(matches!(
            parse("GPU-n1-1::3", &gpus, 3),
            Err(SlotError::Unknown { .. })
        ));
        assert!(matches!(
            parse("GPU-zz::0", &gpus, 3),
            Err(SlotError::Unknown { .. })
        ));
    }

    #[test]
    fn gpus_of_lists_each_gpu_once() {
        let gpus = node();
        let ids = vec![
            "GPU-n1-1::0".to_string(),
            "GPU-n1-1::1".into(),
            "GPU-n1-0::0".into(),
        ];
        assert_eq!(
            gpus_of(&ids, &gpus, 3).unwrap(),
            vec!["GPU-n1-1", "GPU-n1-0"]
        );
    }
}
