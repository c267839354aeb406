//! What Tessera adds to a member of an ensemble whose membership it keeps
//! (`identity.membership`), and what the membership controller renders for one member.
//!
//! A member's stop is held by a `preStop` hook while the member still votes: a scale-in's member
//! is removed from the voters by the controller before its process stops, and any other stop
//! (restart, drain, eviction) is released by the controller without removing anything
//! (a hook cannot tell the two apart on its own; the controller compares with the target).

use serde_json::{Value, json};

use super::compile::Profile;
use super::identity::{Facts, Renderer};
use super::profile::Membership;
use super::{RenderError, RenderProblem};
use tessera_kernel::ensemble::Record;

/// Volume and directory of the release marker.
pub const MARKER_VOLUME: &str = "tessera-membership";
/// Where the marker directory is mounted in the member's container.
pub const MARKER_DIR: &str = "/run/tessera-membership";
/// The file whose presence releases a held stop.
pub const RELEASED: &str = "/run/tessera-membership/released";
/// Default longest hold of a stop.
pub const DEFAULT_LEAVE_TIMEOUT_SECONDS: u32 = 60;

/// The `preStop` hook holding a member's stop while it votes, bounded by the profile's timeout.
pub fn hold_stop_hook(m: &Membership) -> Value {
    let limit = m
        .leave_timeout_seconds
        .unwrap_or(DEFAULT_LEAVE_TIMEOUT_SECONDS);
    let script = format!(
        "n=0; while [ \"$n\" -lt {limit} ]; do [ -e {RELEASED} ] && exit 0; \
         ( {votes} ) >/dev/null 2>&1 || exit 0; sleep 1; n=$((n+1)); done",
        votes = m.commands.votes
    );
    json!({"exec": {"command": ["sh", "-c", script]}})
}

/// The marker volume (`emptyDir`) and its mount.
pub fn marker_volume() -> (Value, Value) {
    (
        json!({"name": MARKER_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}),
        json!({"name": MARKER_VOLUME, "mountPath": MARKER_DIR}),
    )
}

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
