//! The claims this node has prepared, and their checkpoint: what `NodePrepareResources`
//! answered for each claim UID, so that a second prepare of the same claim gets the same
//! answer without a second spec, and a restarted plugin still knows what to unprepare.
//!
//! The checkpoint is versioned JSON; a file of another version or shape is an error the caller
//! reports (it never guesses at what was prepared).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::decide::cdi;
use crate::decide::share::ClaimEdits;

/// The checkpoint format's version.
pub const CHECKPOINT_VERSION: &str = "v1";

/// One device of a prepared claim, as `NodePrepareResources` answered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreparedDevice {
    /// The claim request it serves.
    pub request: String,
    /// Pool.
    pub pool: String,
    /// Device.
    pub device: String,
    /// Fully qualified CDI device IDs.
    pub cdi_ids: Vec<String>,
}

/// A prepared claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreparedClaim {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The CDI spec file written for it (a name inside the CDI directory).
    pub spec_file: String,
    /// Its devices.
    pub devices: Vec<PreparedDevice>,
}

impl PreparedClaim {
    /// The record of claim `namespace/name` (UID `uid`) prepared with `edits`: one CDI device
    /// per allocation result, named as [`cdi::spec`] names them.
    pub fn new(namespace: &str, name: &str, uid: &str, edits: &ClaimEdits) -> Self {
        let devices = edits
            .allocated
            .iter()
            .enumerate()
            .map(|(n, a)| PreparedDevice {
                request: a.request.clone(),
                pool: a.pool.clone(),
                device: a.device.clone(),
                cdi_ids: vec![cdi::qualified_id(&cdi::device_name(uid, n))],
            })
            .collect();
        Self {
            namespace: namespace.into(),
            name: name.into(),
            spec_file: cdi::file_name(uid),
            devices,
        }
    }
}

/// Prepared claims by UID.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Prepared {
    claims: BTreeMap<String, PreparedClaim>,
}

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    version: String,
    claims: BTreeMap<String, PreparedClaim>,
}

/// The checkpoint could not be read.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// Not JSON of the checkpoint's shape.
    #[error("DRA checkpoint: {0}")]
    Json(#[from] serde_json::Error),
    /// Written by a version this build does not read.
    #[error("DRA checkpoint: unsupported version {0:?} (this build reads {CHECKPOINT_VERSION:?})")]
    Version(String),
}

impl Prepared {
    /// The claim `uid`, if prepared.
    pub fn get(&self, uid: &str) -> Option<&PreparedClaim> {
        self.claims.get(uid)
    }

    /// Records claim `uid` as prepared (replacing an earlier record).
    pub fn insert(&mut self, uid: &str, claim: PreparedClaim) {
        self.claims.insert(uid.to_string(), claim);
    }

    /// Forgets claim `uid`; what it was, if anything.
    pub fn remove(&mut self, uid: &str) -> Option<PreparedClaim> {
        self.claims.remove(uid)
    }

    /// Number of prepared claims.
    pub fn len(&self) -> usize {
        self.claims.len()
    }

    /// No claim prepared.
    pub fn is_empty(&self) -> bool {
        self.claims.is_empty()
    }

    /// The checkpoint text.
    pub fn encode(&self) -> String {
        let checkpoint = Checkpoint {
            version: CHECKPOINT_VERSION.into(),
            claims: self.claims.clone(),
        };
        // Strings and lists only: serialising cannot fail.
        serde_json::to_string_pretty(&checkpoint).unwrap_or_default()
    }

    /// Reads a checkpoint.
    pub fn decode(text: &str) -> Result<Self, CheckpointError> {
        let c: Checkpoint = serde_json::from_str(text)?;
        if c.version != CHECKPOINT_VERSION {
            return Err(CheckpointError::Version(c.version));
        }
        Ok(Self { claims: c.claims })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(name: &str) -> PreparedClaim {
        PreparedClaim {
            namespace: "ml".into(),
            name: name.into(),
            spec_file: format!("{name}.json"),
            devices: vec![PreparedDevice {
                request: "gpu".into(),
                pool: "node-1".into(),
                device: "gpu-0".into(),
                cdi_ids: vec!["gpu.tessera.dev/claim=uid-0".into()],
            }],
        }
    }

    #[test]
    fn checkpoint_round_trips() {
        let mut p = Prepared::default();
        p.insert("uid-a", claim("a"));
        p.insert("uid-b", claim("b"));
        assert_eq!(Prepared::decode(&p.encode()).unwrap(), p);
    }

    #[test]
    fn checkpoint_of_another_version_is_refused() {
        let text = r#"{"version":"v9","claims":{}}"#;
        assert!(matches!(
            Prepared::decode(text),
            Err(CheckpointError::Version(v)) if v == "v9"
        ));
    }

    #[test]
    fn removing_an_unknown_claim_changes_nothing() {
        let mut p = Prepared::default();
        p.insert("uid-a", claim("a"));
        assert_eq!(p.remove("uid-x"), None);
        assert_eq!(p.len(), 1);
        assert_eq!(p.remove("uid-a"), Some(claim("a")));
        assert!(p.is_empty());
    }
}
