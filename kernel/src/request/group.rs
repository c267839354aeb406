//! Anti-affinity group membership of a pod: its owning StatefulSet, or the `tessera.dev/group`
//! label; quorum from `tessera.dev/quorum: "true"`.

use k8s_openapi::api::core::v1::Pod;

use crate::keys;

/// Pod label carrying the ensemble size of a quorum group (set by the webhook from the
/// StatefulSet's replicas, or by hand for label groups).
pub const LABEL_GROUP_SIZE: &str = "tessera.dev/group-size";

/// A set of replicas to spread across nodes and zones.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Group {
    /// `namespace/name`, unique in the cluster.
    pub key: String,
    /// Keep every node and zone below half of the ensemble.
    pub quorum: bool,
    /// Ensemble size, when known (quorum needs it; otherwise members seen so far are used).
    pub size: Option<u32>,
}

/// The group `pod` belongs to, if any.
pub fn pod_group(pod: &Pod) -> Option<Group> {
    let meta = &pod.metadata;
    let ns = meta.namespace.as_deref().unwrap_or("default");
    let labels = meta.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    let name = label(keys::LABEL_GROUP).map(str::to_string).or_else(|| {
        meta.owner_references
            .iter()
            .flatten()
            .find(|o| o.kind == "StatefulSet" && o.controller == Some(true))
            .map(|o| o.name.clone())
    })?;
    Some(Group {
        key: format!("{ns}/{name}"),
        quorum: label(keys::LABEL_QUORUM) == Some("true"),
        size: label(LABEL_GROUP_SIZE).and_then(|s| s.parse().ok()),
    })
}
