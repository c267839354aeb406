//! An ensemble's recorded membership: which members vote, which are learners (in sync but not
//! voting), who leads, and the size the ensemble is being moved to. The membership controller
//! writes it on the StatefulSet (`tessera.dev/membership`); the webhook renders a joining
//! member's peer list from it and the extender spreads the voters it names.
//!
//! Members are StatefulSet ordinals; a profile's templates turn them into product ids.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The membership as last recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// Members that vote.
    pub voters: BTreeSet<u32>,
    /// Members that follow without voting (joining, not promoted yet).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub learners: BTreeSet<u32>,
    /// The member that leads, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<u32>,
    /// The StatefulSet's replicas the ensemble is being moved to.
    pub target: u32,
    /// The step under way or waited for, in words (for `tessera inspect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

/// Why an annotation is not a record.
#[derive(Debug, thiserror::Error)]
#[error("annotation tessera.dev/membership: {0}")]
pub struct BadRecord(#[from] serde_json::Error);

impl Record {
    /// Reads the annotation's value.
    pub fn parse(text: &str) -> Result<Record, BadRecord> {
        Ok(serde_json::from_str(text)?)
    }

    /// The annotation's value.
    pub fn to_annotation(&self) -> String {
        // A struct of sets and integers always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// True when `ordinal` is recorded as a member, voting or not.
    pub fn knows(&self, ordinal: u32) -> bool {
        self.voters.contains(&ordinal) || self.learners.contains(&ordinal)
    }

    /// The ensemble size quorum spreading keeps every node and zone below half of: the voters,
    /// and while a scale is under way the smaller of the voters and the target, so that neither
    /// the set voting now nor the one being moved to can lose quorum with one node or zone.
    pub fn spread_size(&self) -> u32 {
        let voters = u32::try_from(self.voters.len()).unwrap_or(u32::MAX);
        voters.min(self.target).max(1)
    }

    /// Voters that may be lost while the rest still form a majority.
    pub fn fault_tolerance(&self) -> u32 {
        let voters = u32::try_from(self.voters.len()).unwrap_or(u32::MAX);
        voters.saturating_sub(1) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(voters: &[u32], target: u32) -> Record {
        Record {
            voters: voters.iter().copied().collect(),
            target,
            ..Record::default()
        }
    }

    #[test]
    fn the_annotation_round_trips_and_names_what_is_wrong() {
        let mut r = record(&[0, 1, 2], 5);
        r.learners.insert(3);
        r.leader = Some(1);
        let text = r.to_annotation();
        assert_eq!(
            text,
            r#"{"voters":[0,1,2],"learners":[3],"leader":1,"target":5}"#
        );
        assert_eq!(Record::parse(&text).unwrap(), r);
        let err = Record::parse(r#"{"voters":"all"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("tessera.dev/membership"), "{err}");
    }

    #[test]
    fn spreading_follows_the_smaller_of_the_voters_and_the_target() {
        // Scaling 3 -> 5: the three voters decide quorum until the new members vote.
        assert_eq!(record(&[0, 1, 2], 5).spread_size(), 3);
        // Scaling 5 -> 3: the three that stay must not lose quorum either.
        assert_eq!(record(&[0, 1, 2, 3, 4], 3).spread_size(), 3);
        assert_eq!(record(&[0, 1, 2, 3, 4], 5).spread_size(), 5);
    }

    #[test]
    fn fault_tolerance_is_a_minority_of_the_voters() {
        assert_eq!(record(&[0, 1, 2], 3).fault_tolerance(), 1);
        assert_eq!(record(&[0, 1, 2, 3], 4).fault_tolerance(), 1);
        assert_eq!(record(&[0, 1, 2, 3, 4], 5).fault_tolerance(), 2);
        assert_eq!(record(&[], 0).fault_tolerance(), 0);
    }
}
