//! Reads one ensemble: its pods from the StatefulSet's view, and the live membership from the
//! product's answer to the profile's `members` command.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use tessera_inject::Profile;
use tessera_inject::membership::member;
use tessera_kernel::keys;
use tessera_membership::{Live, PodState};

/// Label the StatefulSet controller puts on each pod with its template revision.
const LABEL_REVISION: &str = "controller-revision-hash";

/// An ensemble's StatefulSet, as far as the controller reads it.
#[derive(Debug, Clone)]
pub struct Ensemble<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// StatefulSet name.
    pub name: &'a str,
    /// Headless service.
    pub service: Option<&'a str>,
    /// `spec.replicas`.
    pub target: u32,
    /// The revision pods should run.
    pub update_revision: Option<&'a str>,
    /// `spec.updateStrategy.type` is `OnDelete`.
    pub on_delete: bool,
}

impl<'a> Ensemble<'a> {
    /// Reads `sts`.
    pub fn of(sts: &'a StatefulSet) -> Option<Ensemble<'a>> {
        let spec = sts.spec.as_ref()?;
        Some(Ensemble {
            namespace: sts.metadata.namespace.as_deref()?,
            name: sts.metadata.name.as_deref()?,
            service: spec.service_name.as_deref(),
            target: u32::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0),
            update_revision: sts
                .status
                .as_ref()
                .and_then(|s| s.update_revision.as_deref()),
            on_delete: spec
                .update_strategy
                .as_ref()
                .and_then(|u| u.type_.as_deref())
                == Some("OnDelete"),
        })
    }
}

/// A member's ordinal (`apps.kubernetes.io/pod-index`, else the name's suffix).
pub fn ordinal(pod: &Pod, statefulset: &str) -> Option<u32> {
    let labels = pod.metadata.labels.as_ref();
    if let Some(v) = labels.and_then(|l| l.get(keys::LABEL_POD_INDEX)) {
        return v.parse().ok();
    }
    pod.metadata
        .name
        .as_deref()?
        .strip_prefix(statefulset)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

/// The state the planner reads of one pod. `released` stops are the controller's memory.
pub fn pod_state(pod: &Pod, update_revision: Option<&str>, released: bool) -> PodState {
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let revision = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_REVISION))
        .map(String::as_str);
    PodState {
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        updated: update_revision.is_none() || revision == update_revision,
        released,
    }
}

/// Why an answer is not a membership.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadAnswer {
    /// A line is not `ID ROLE`.
    #[error("line {0:?} is not `ID ROLE`")]
    Line(String),
    /// An id no ordinal renders to.
    #[error("member id {0:?} is not any member's id")]
    UnknownId(String),
    /// A role the profile does not name.
    #[error("role {0:?} is neither the voter's nor the learner's")]
    UnknownRole(String),
    /// Nothing listed.
    #[error("no member listed")]
    Empty,
}

/// Reads the `members` command's answer: `ID ROLE` lines. `ids` maps the product's ids to
/// ordinals.
pub fn parse_members(
    text: &str,
    ids: &BTreeMap<String, u32>,
    voter: &str,
    learner: &str,
) -> Result<Live, BadAnswer> {
    let mut live = Live::default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut words = line.split_whitespace();
        let (Some(id), Some(role), None) = (words.next(), words.next(), words.next()) else {
            return Err(BadAnswer::Line(line.to_string()));
        };
        let ordinal = *ids
            .get(id)
            .ok_or_else(|| BadAnswer::UnknownId(id.to_string()))?;
        let set: &mut BTreeSet<u32> = if role == voter {
            &mut live.voters
        } else if role == learner {
            &mut live.learners
        } else {
            return Err(BadAnswer::UnknownRole(role.to_string()));
        };
        set.insert(ordinal);
    }
    if live.voters.is_empty() {
        return Err(BadAnswer::Empty);
    }
    Ok(live)
}

/// The product id of every ordinal below `limit`, for reading answers.
pub fn ids(
    profile: &Profile,
    ensemble: &Ensemble<'_>,
    limit: u32,
    cluster_domain: &str,
) -> BTreeMap<String, u32> {
    (0..limit)
        .filter_map(|o| {
            member(
                profile,
                ensemble.name,
                ensemble.namespace,
                ensemble.service,
                o,
                cluster_domain,
            )
            .ok()
            .map(|m| (m.id, o))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zk_ids() -> BTreeMap<String, u32> {
        (0..5).map(|o| ((o + 1).to_string(), o)).collect()
    }

    #[test]
    fn reads_voters_and_learners_by_ordinal() {
        let live = parse_members(
            "1 participant\n2 participant\n 3 participant\n4 observer\n",
            &zk_ids(),
            "participant",
            "observer",
        )
        .unwrap();
        assert_eq!(live.voters, [0, 1, 2].into());
        assert_eq!(live.learners, [3].into());
    }

    #[test]
    fn an_answer_that_is_not_a_membership_is_named() {
        let ids = zk_ids();
        let read = |t: &str| parse_members(t, &ids, "participant", "observer");
        assert_eq!(
            read("1 participant extra"),
            Err(BadAnswer::Line("1 participant extra".into()))
        );
        assert_eq!(read("9 participant"), Err(BadAnswer::UnknownId("9".into())));
        assert_eq!(
            read("1 leader"),
            Err(BadAnswer::UnknownRole("leader".into()))
        );
        assert_eq!(read(""), Err(BadAnswer::Empty));
    }
}
