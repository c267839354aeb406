//! Wall-clock time as the apiserver writes it (annotations) and reads it (heartbeats).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn unix_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Now in RFC 3339 (seconds, UTC), as Kubernetes writes times.
pub fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::new(unix_secs(), 0)
        .map(|t| t.to_string())
        .unwrap_or_default()
}
