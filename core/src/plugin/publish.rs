//! When the device plugin writes the node's `gpu-inventory` annotation and its heartbeat.
//!
//! The extender treats a stale heartbeat as "no shareable GPU", so the heartbeat is rewritten every
//! `heartbeat_ms` even when nothing changed; a change is written at once, but never sooner than
//! `min_interval_ms` after the previous write (a flapping GPU must not flood the apiserver). A
//! failed write is retried after `min_interval_ms`. Times are monotonic milliseconds.

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Write the inventory and heartbeat now.
    Write,
    /// Nothing to write before this time.
    WaitUntil(u64),
}

/// The writer's memory of its last write.
#[derive(Debug, Clone)]
pub struct Publisher {
    heartbeat_ms: u64,
    min_interval_ms: u64,
    written: Option<String>,
    last_attempt_ms: Option<u64>,
    last_success_ms: Option<u64>,
}

impl Publisher {
    /// A publisher that has written nothing yet.
    pub fn new(heartbeat_ms: u64, min_interval_ms: u64) -> Self {
        Self {
            heartbeat_ms,
            min_interval_ms,
            written: None,
            last_attempt_ms: None,
            last_success_ms: None,
        }
    }

    /// Whether to write `current` (the encoded inventory) at `now_ms`.
    pub fn decide(&self, current: &str, now_ms: u64) -> Decision {
        let earliest = self.last_attempt_ms.map_or(0, |t| t + self.min_interval_ms);
        let changed = self.written.as_deref() != Some(current);
        let due = if changed {
            earliest
        } else {
            let heartbeat = self.last_success_ms.map_or(0, |t| t + self.heartbeat_ms);
            heartbeat.max(earliest)
        };
        if now_ms >= due {
            Decision::Write
        } else {
            Decision::WaitUntil(due)
        }
    }

    /// Records a successful write of `text` at `now_ms`.
    pub fn written(&mut self, text: &str, now_ms: u64) {
        self.written = Some(text.to_string());
        self.last_attempt_ms = Some(now_ms);
        self.last_success_ms = Some(now_ms);
    }

    /// Records a failed write at `now_ms`.
    pub fn failed(&mut self, now_ms: u64) {
        self.last_attempt_ms = Some(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_inventory_is_written_at_once_then_only_the_heartbeat() {
        let mut p = Publisher::new(60_000, 5_000);
        assert_eq!(p.decide("a", 0), Decision::Write);
        p.written("a", 0);
        assert_eq!(p.decide("a", 30_000), Decision::WaitUntil(60_000));
        assert_eq!(p.decide("a", 60_000), Decision::Write);
    }

    #[test]
    fn a_change_is_written_but_never_faster_than_the_minimum_interval() {
        let mut p = Publisher::new(60_000, 5_000);
        p.written("a", 10_000);
        assert_eq!(p.decide("b", 12_000), Decision::WaitUntil(15_000));
        assert_eq!(p.decide("b", 15_000), Decision::Write);
        p.written("b", 15_000);
        assert_eq!(p.decide("a", 16_000), Decision::WaitUntil(20_000));
    }

    #[test]
    fn a_failed_write_is_retried_after_the_minimum_interval() {
        let mut p = Publisher::new(60_000, 5_000);
        p.failed(0);
        assert_eq!(p.decide("a", 1_000), Decision::WaitUntil(5_000));
        assert_eq!(p.decide("a", 5_000), Decision::Write);
    }
}
