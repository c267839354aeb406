//! Anti-affinity groups at admission: a profile with `identity.antiAffinity: spread | quorum`
//! hands its pods to the Tessera scheduler and labels them with their group, so that the
//! extender spreads them (DESIGN.md, "Scheduling policies (extender)").
//!
//! The labels are exactly what [`tessera_kernel::request::pod_group`] reads on the extender's side:
//! `tessera.dev/group` (which it prefers over the owning StatefulSet, so writing the
//! StatefulSet's name keeps the key it would derive), `tessera.dev/quorum: "true"` and
//! `tessera.dev/group-size`. What the pod already carries is kept.

use super::compile::Profile;
use super::identity::ReplicaLookup;
use super::patch::Changes;
use super::profile::AntiAffinity;
use super::view::PodView;
use super::{RenderError, RenderProblem};
use tessera_kernel::ensemble::Record;
use tessera_kernel::keys;
use tessera_kernel::request::LABEL_GROUP_SIZE;

/// The scheduler name kube-scheduler defaults a pod to.
const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// Profile field named in errors and warnings.
const FIELD: &str = "spec.identity.antiAffinity";

/// Adds the scheduler name and group labels `p` asks for to `changes`; notes for the client go
/// to `warnings`. Only a quorum group of unknown size is an error.
pub(super) fn apply(
    p: &Profile,
    pod: &PodView<'_>,
    replicas: Option<ReplicaLookup<'_>>,
    record: Option<&Record>,
    changes: &mut Changes,
    warnings: &mut Vec<String>,
) -> Result<(), RenderError> {
    let identity = p.spec.identity.as_ref();
    let mode = identity.map_or(AntiAffinity::None, |i| i.anti_affinity);
    if mode.is_none() {
        return Ok(());
    }
    let sts = pod.statefulset();
    let own_group = pod.label(keys::LABEL_GROUP).is_some();
    if !own_group && sts.is_none() {
        warnings.push(format!(
            "profile {:?}: {FIELD}: the pod is neither a StatefulSet member nor labelled {}, \
             so it has no group to spread",
            p.name,
            keys::LABEL_GROUP
        ));
        return Ok(());
    }
    let scheduler = p.scheduler_name().unwrap_or(keys::SCHEDULER_NAME);
    let set_scheduler = match (changes.scheduler_name.as_deref(), pod.scheduler_name()) {
        // An earlier profile already hands the pod to a Tessera scheduler.
        (Some(_), _) => false,
        (None, None | Some(DEFAULT_SCHEDULER)) => true,
        (None, Some(s)) if s == scheduler => false,
        (None, Some(other)) => {
            warnings.push(format!(
                "profile {:?}: {FIELD}: the pod keeps its scheduler {other:?}, so the Tessera \
                 extender will not spread its group",
                p.name
            ));
            return Ok(());
        }
    };
    let size = match pod.label(LABEL_GROUP_SIZE) {
        Some(_) => None,
        None => {
            let own = sts.and_then(|s| super::identity::ordinal(pod, s).ok());
            // A recorded membership spreads its voters (and, mid-scale, the smaller of the voters
            // and the target), not the replicas.
            let known = record.map(Record::spread_size).or_else(|| {
                sts.and_then(|s| replicas.and_then(|f| f(s)))
                    .or(identity.and_then(|i| i.replicas))
                    .map(|n| super::identity::at_least_member(n, own))
            });
            if known.is_none() && mode == AntiAffinity::Quorum {
                return Err(RenderError {
                    profile: p.name.clone(),
                    field: FIELD.into(),
                    problem: RenderProblem::NoReplicas,
                });
            }
            known
        }
    };
    if set_scheduler {
        changes.scheduler_name = Some(scheduler.to_string());
    }
    let mut label = |key: &str, value: String| {
        if pod.label(key).is_none() {
            changes.labels.entry(key.to_string()).or_insert(value);
        }
    };
    if let Some(sts) = sts {
        label(keys::LABEL_GROUP, sts.to_string());
    }
    if let Some(n) = size {
        label(LABEL_GROUP_SIZE, n.to_string());
    }
    if mode == AntiAffinity::Quorum {
        label(keys::LABEL_QUORUM, "true".to_string());
    }
    Ok(())
}
