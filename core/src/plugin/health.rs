//! GPU health from NVML XID events, and recovery (DESIGN.md, "GPU health").
//!
//! A critical XID marks a GPU unhealthy at once. Application XIDs (a faulting kernel, a bad
//! memory access by user code, a graphics engine exception, preemption, a video decoder error,
//! a context-switch timeout) say nothing about the GPU and are ignored. A GPU recovers when it has
//! seen no critical event for `recover_after_ms`; a failed NVML query counts as a critical event.
//! Times are milliseconds on a monotonic clock the caller owns.

use std::collections::BTreeMap;

/// XIDs caused by the application, not the GPU: 13 (graphics engine exception), 31 (GPU memory
/// page fault), 43 (GPU stopped processing, a user app fault), 45 (preemptive cleanup), 68 (video
/// decoder exception), 109 (context-switch timeout).
pub const APPLICATION_XIDS: [u64; 6] = [13, 31, 43, 45, 68, 109];

/// Whether an XID makes a GPU unhealthy. `None` is the value NVML reports when it cannot tell
/// which XID happened (999); it counts as critical.
pub fn is_critical(xid: Option<u64>) -> bool {
    xid.is_none_or(|x| !APPLICATION_XIDS.contains(&x))
}

/// A GPU's health changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A critical event made it unhealthy.
    Unhealthy {
        /// GPU UUID.
        uuid: String,
        /// The XID, `None` for an unknown XID or a failed health query.
        xid: Option<u64>,
    },
    /// Healthy again after the quiet period.
    Recovered {
        /// GPU UUID.
        uuid: String,
    },
}

/// Per GPU: the time of the last critical event while it is unhealthy.
#[derive(Debug, Clone)]
pub struct Tracker {
    recover_after_ms: u64,
    unhealthy_since_last: BTreeMap<String, u64>,
}

impl Tracker {
    /// A tracker where every GPU starts healthy.
    pub fn new(recover_after_ms: u64) -> Self {
        Self {
            recover_after_ms,
            unhealthy_since_last: BTreeMap::new(),
        }
    }

    /// Whether the GPU is healthy now.
    pub fn is_healthy(&self, uuid: &str) -> bool {
        !self.unhealthy_since_last.contains_key(uuid)
    }

    /// Records an XID on `uuid` at `now_ms`; returns the change, if any. A second critical event on
    /// an unhealthy GPU restarts its quiet period and changes nothing visible.
    pub fn on_xid(&mut self, uuid: &str, xid: Option<u64>, now_ms: u64) -> Option<Change> {
        if !is_critical(xid) {
            return None;
        }
        let was_healthy = self
            .unhealthy_since_last
            .insert(uuid.to_string(), now_ms)
            .is_none();
        was_healthy.then(|| Change::Unhealthy {
            uuid: uuid.to_string(),
            xid,
        })
    }

    /// GPUs whose quiet period has passed by `now_ms`, now healthy again.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Change> {
        let due: Vec<String> = self
            .unhealthy_since_last
            .iter()
            .filter(|(_, last)| now_ms.saturating_sub(**last) >= self.recover_after_ms)
            .map(|(uuid, _)| uuid.clone())
            .collect();
        for uuid in &due {
            self.unhealthy_since_last.remove(uuid);
        }
        due.into_iter()
            .map(|uuid| Change::Recovered { uuid })
            .collect()
    }

    /// When the next recovery is due, if any GPU is unhealthy.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.unhealthy_since_last
            .values()
            .min()
            .map(|last| last + self.recover_after_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_xids_leave_the_gpu_healthy() {
        let mut t = Tracker::new(1000);
        for xid in [13, 31, 43, 45, 68] {
            assert_eq!(t.on_xid("GPU-a", Some(xid), 0), None, "xid {xid}");
        }
        assert!(t.is_healthy("GPU-a"));
    }

    #[test]
    fn critical_and_unknown_xids_mark_unhealthy_once() {
        let mut t = Tracker::new(1000);
        assert_eq!(
            t.on_xid("GPU-a", Some(79), 5),
            Some(Change::Unhealthy {
                uuid: "GPU-a".into(),
                xid: Some(79)
            })
        );
        assert_eq!(t.on_xid("GPU-a", Some(48), 6), None);
        assert!(!t.is_healthy("GPU-a"));
        assert!(t.on_xid("GPU-b", None, 7).is_some());
    }

    #[test]
    fn gpu_recovers_after_a_quiet_period_that_restarts_on_each_event() {
        let mut t = Tracker::new(1000);
        t.on_xid("GPU-a", Some(79), 0);
        t.on_xid("GPU-a", Some(79), 600);
        assert!(t.tick(1500).is_empty());
        assert_eq!(t.next_due_ms(), Some(1600));
        assert_eq!(
            t.tick(1600),
            vec![Change::Recovered {
                uuid: "GPU-a".into()
            }]
        );
        assert!(t.is_healthy("GPU-a"));
        assert_eq!(t.next_due_ms(), None);
    }
}
