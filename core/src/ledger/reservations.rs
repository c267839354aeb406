//! Reservations: shares the extender has handed out at bind time that the pod watch has not yet
//! confirmed. They count in the ledger at once, so two binds never get the same share, and are
//! released when the bind fails, when the pod goes away, or when the pod never shows up on its
//! node within the timeout (the extender has no unreserve callback, so nothing else would).
//! Time is passed in (milliseconds on any monotonic clock): core reads no clock.

use std::collections::HashMap;

use super::{ClusterLedger, Holding, LedgerError};

/// Pending reservations and their deadlines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reservations {
    deadlines: HashMap<String, u64>,
}

impl Reservations {
    /// Records `holding` for `pod` on node index `node` until `deadline_ms`; refuses, changing
    /// nothing, if it would over-commit.
    pub fn reserve(
        &mut self,
        ledger: &mut ClusterLedger,
        pod: &str,
        node: usize,
        holding: Holding,
        deadline_ms: u64,
    ) -> Result<(), LedgerError> {
        ledger.apply_at(node, pod, holding)?;
        self.deadlines.insert(pod.to_string(), deadline_ms);
        Ok(())
    }

    /// The watch saw the pod bound with its assignment: the shares are no longer provisional.
    pub fn confirm(&mut self, pod: &str) -> bool {
        self.deadlines.remove(pod).is_some()
    }

    /// Undoes a reservation (the bind failed, or the pod was deleted before confirmation).
    pub fn cancel(&mut self, ledger: &mut ClusterLedger, pod: &str) -> bool {
        if self.deadlines.remove(pod).is_none() {
            return false;
        }
        ledger.release(pod).is_some()
    }

    /// Releases every reservation whose deadline has passed; returns their pods.
    pub fn expire(&mut self, ledger: &mut ClusterLedger, now_ms: u64) -> Vec<String> {
        let mut gone: Vec<String> = self
            .deadlines
            .iter()
            .filter(|(_, deadline)| **deadline <= now_ms)
            .map(|(pod, _)| pod.clone())
            .collect();
        gone.sort();
        for pod in &gone {
            self.deadlines.remove(pod);
            ledger.release(pod);
        }
        gone
    }

    /// True while `pod` has a reservation the watch has not confirmed.
    pub fn is_pending(&self, pod: &str) -> bool {
        self.deadlines.contains_key(pod)
    }

    /// Number of pending reservations.
    pub fn len(&self) -> usize {
        self.deadlines.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.deadlines.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{ContainerPlacement, HostCapacity, Placement, Share};
    use crate::testing;

    fn holding(mem: u64) -> Holding {
        let share = Share {
            gpu: 0,
            mem_mib: mem,
            core_milli: 100,
        };
        Holding {
            placement: Placement {
                init: Vec::new(),
                containers: vec![ContainerPlacement {
                    container: "c".into(),
                    shares: vec![share],
                }],
            },
            cpu_milli: 0,
            mem_mib: 0,
            run_as: crate::request::RunAs::Unstated,
        }
    }

    fn ledger() -> ClusterLedger {
        let mut l = ClusterLedger::new(10);
        l.upsert_node(
            "n",
            None,
            &testing::gpus("n", 1, "T4", 16384),
            HostCapacity::untracked(),
        );
        l
    }

    #[test]
    fn a_reservation_counts_at_once_so_a_second_bind_cannot_take_the_same_share() {
        let (mut l, mut r) = (ledger(), Reservations::default());
        r.reserve(&mut l, "ns/a", 0, holding(10000), 1_000).unwrap();
        let err = r
            .reserve(&mut l, "ns/b", 0, holding(10000), 1_000)
            .unwrap_err();
        assert!(matches!(err, LedgerError::OverCommit { .. }), "{err}");
        assert_eq!(r.len(), 1, "the refused one left nothing behind");
    }

    #[test]
    fn cancel_and_timeout_release_but_confirmed_pods_stay() {
        let (mut l, mut r) = (ledger(), Reservations::default());
        let empty = l.clone();
        r.reserve(&mut l, "ns/failed-bind", 0, holding(1000), 1_000)
            .unwrap();
        assert!(r.cancel(&mut l, "ns/failed-bind"));
        assert!(l.same_state(&empty));
        r.reserve(&mut l, "ns/never-seen", 0, holding(1000), 1_000)
            .unwrap();
        r.reserve(&mut l, "ns/seen", 0, holding(1000), 1_000)
            .unwrap();
        assert!(r.confirm("ns/seen"));
        assert_eq!(r.expire(&mut l, 999), Vec::<String>::new());
        assert_eq!(r.expire(&mut l, 1_000), vec!["ns/never-seen".to_string()]);
        assert!(l.node_of("ns/seen").is_some());
        assert!(l.node_of("ns/never-seen").is_none());
        assert!(r.is_empty());
    }
}
