//! The parts of a kept member's pod that depend only on its profile: the `preStop` hook that
//! holds the member's stop while it votes, and the release marker's volume. A leaf module, so
//! that `parts` (built when a profile is compiled) can use them without importing `membership`,
//! which needs the compiled profile.

use serde_json::{Value, json};

use super::profile::Membership;

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
