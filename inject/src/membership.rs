//! What Tessera adds to a member of an ensemble whose membership it keeps
//! (`identity.membership`), and what the membership controller renders for one member.
//!
//! A member's stop is held by a `preStop` hook while the member still votes: a scale-in's member
//! is removed from the voters by the controller before its process stops, and any other stop
//! (restart, drain, eviction) is released by the controller without removing anything
//! (a hook cannot tell the two apart on its own; the controller compares with the target).

use super::compile::Profile;
use super::identity::{Facts, Renderer};
use super::{RenderError, RenderProblem};
use tessera_kernel::ensemble::Record;

pub use super::hold_stop::{
    DEFAULT_LEAVE_TIMEOUT_SECONDS, MARKER_DIR, MARKER_VOLUME, RELEASED, hold_stop_hook,
    marker_volume,
};

/// One member as the controller names it to the product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The product's id (`identity.membership.id`).
    pub id: String,
    /// Its peer entry rendered as a voter.
    pub entry: String,
}

/// Renders member `ordinal` of StatefulSet `statefulset` (headless service `service`) for
/// the membership controller.
pub fn member(
    profile: &Profile,
    statefulset: &str,
    namespace: &str,
    service: Option<&str>,
    ordinal: u32,
    cluster_domain: &str,
) -> Result<Member, RenderError> {
    let fail = |field: &str, problem| RenderError {
        profile: profile.name.clone(),
        field: field.to_string(),
        problem,
    };
    let (Some(id), Some(entry)) = (&profile.membership_id, &profile.peer_entry) else {
        return Err(fail(
            "spec.identity.membership",
            RenderProblem::NoMembership,
        ));
    };
    let pod = format!("{statefulset}-{ordinal}");
    let facts = Facts {
        pod: Some(&pod),
        namespace,
        member: Some((statefulset, ordinal)),
        service,
        service_account: "default",
    };
    // Rendered as a voter: the only entry the controller hands the product is the one to add.
    let voter = Record {
        voters: [ordinal].into(),
        target: ordinal.saturating_add(1),
        ..Record::default()
    };
    let domain = profile.cluster_domain(cluster_domain);
    let r = Renderer {
        facts: &facts,
        profile,
        replicas: Some(ordinal.saturating_add(1)),
        cluster_domain: domain,
        record: Some(&voter),
        peer_list: Default::default(),
    };
    Ok(Member {
        id: r.render("spec.identity.membership.id", id)?,
        entry: r.render("spec.identity.peers.entry", entry)?,
    })
}
