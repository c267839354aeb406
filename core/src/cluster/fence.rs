//! Fencing between extender replicas. Every assignment names the leader and Lease term that
//! wrote it (`tessera.dev/assigned-by`, beside `bind-time`), so the replica judging it can tell
//! its own failed binds (stale at once: it knows no bind of its own is in flight) from another
//! term's binds, which may still complete: those count as reservations until their reservation
//! timeout has passed, and only then are they stale. Standbys judge nothing stale; they keep
//! the same reservations so that the moment one leads, it hands out no share twice.

use crate::annotations::Writer;
use crate::ledger::Holding;

use super::{Cluster, PodFacts};

/// Who wrote a pod's assignment, and when, as its annotations say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// `assigned-by` (absent: written before replicas were fenced, or by hand).
    pub writer: Option<Writer>,
    /// `bind-time`, seconds since the Unix epoch.
    pub bind_time: Option<i64>,
}

/// How the replica judging assignments stands.
#[derive(Debug, Clone, Copy)]
pub struct Judge<'a> {
    /// This replica's writer while it leads; `None` for a standby.
    pub leading: Option<&'a Writer>,
    /// Wall clock, seconds since the Unix epoch.
    pub now_s: i64,
    /// The reservation timeout, seconds: the longest a bind may take to show up bound.
    pub timeout_s: i64,
}

impl Judge<'_> {
    /// Seconds left before another writer's bind of `facts` must have shown up bound; `None`
    /// once passed, or when the assignment is this leader's own.
    fn window_left(&self, facts: &PodFacts) -> Option<i64> {
        let writer = facts.origin.writer.as_ref();
        if writer.is_some() && writer == self.leading {
            return None;
        }
        // Without a bind time the age is unknown: treated as old.
        let left = facts.origin.bind_time? + self.timeout_s - self.now_s;
        (left > 0).then_some(left)
    }
}

impl Cluster {
    /// True when `facts` carries a GPU assignment that no bind will complete and the judging
    /// replica may remove it: it leads, the pod is not bound, not finished, no reservation is
    /// pending for it, and either it wrote the assignment itself in this term or the writer's
    /// reservation timeout has passed. A bind that failed after writing the annotation, or a
    /// replica killed or deposed between the annotation and the Binding, leaves one behind.
    pub fn is_stale_assignment(&self, facts: &PodFacts, judge: &Judge<'_>) -> bool {
        judge.leading.is_some()
            && (facts.assignment.is_some() || facts.assignment_error.is_some())
            && facts.node.is_none()
            && !facts.terminal
            && !self.reservations.is_pending(&facts.key)
            && judge.window_left(facts).is_none()
    }

    /// Counts another writer's bind in flight (an unbound pod whose assignment is within its
    /// reservation timeout) as a reservation, due when that timeout passes (`now_ms` on the
    /// reservations' clock). True when it was taken; a pod already reserved, or one whose shares
    /// are taken meanwhile, is left as it is.
    pub fn adopt_in_flight(&mut self, facts: &PodFacts, judge: &Judge<'_>, now_ms: u64) -> bool {
        let Some(assignment) = &facts.assignment else {
            return false;
        };
        if facts.node.is_some() || facts.terminal || self.reservations.is_pending(&facts.key) {
            return false;
        }
        let Some(left_s) = judge.window_left(facts) else {
            return false;
        };
        let Some(index) = self.ledger.node_index(&assignment.node) else {
            return false;
        };
        let Ok(placement) = self.ledger.nodes()[index].placement_of(assignment) else {
            return false;
        };
        let holding = Holding {
            placement,
            cpu_milli: 0,
            mem_mib: 0,
            run_as: facts.run_as,
        };
        let deadline = now_ms.saturating_add(left_s.unsigned_abs().saturating_mul(1000));
        self.reservations
            .reserve(&mut self.ledger, &facts.key, index, holding, deadline)
            .is_ok()
    }
}
