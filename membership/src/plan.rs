//! The next step.

use std::collections::BTreeSet;

use crate::observe::Observation;

/// What to do next to an ensemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Promote this member (a synced learner) to voter.
    Join(u32),
    /// Remove this member from the voters (it is leaving by scale-in).
    Leave(u32),
    /// This member's stop is not a scale-in: release it without removing anything.
    Keep(u32),
    /// Delete this member's pod so that it restarts on the current template.
    Restart(u32),
    /// Nothing can be done safely now.
    Wait(Wait),
    /// The live membership is the target and every pod is current.
    Steady,
}

/// Why a step waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// No member reported the membership.
    NoAnswer,
    /// A voter that stays is not alive.
    VoterDown(u32),
    /// Removing this leaver would leave the remaining voters without a live majority.
    WouldLoseQuorum(u32),
    /// This member should join but is not in sync yet.
    NotInSync(u32),
    /// A member below the target has no pod yet.
    NoPod(u32),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Join(m) => write!(f, "join member {m}"),
            Step::Leave(m) => write!(f, "remove member {m} from the voters"),
            Step::Keep(m) => write!(f, "release member {m}'s stop (not a scale-in)"),
            Step::Restart(m) => write!(f, "restart member {m} on the current template"),
            Step::Wait(w) => write!(f, "waiting: {w}"),
            Step::Steady => f.write_str("steady"),
        }
    }
}

impl std::fmt::Display for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wait::NoAnswer => f.write_str("no member reports the membership"),
            Wait::VoterDown(m) => write!(f, "voter {m} is not ready"),
            Wait::WouldLoseQuorum(m) => write!(
                f,
                "removing member {m} would leave the other voters without a live majority"
            ),
            Wait::NotInSync(m) => write!(f, "member {m} is not in sync yet"),
            Wait::NoPod(m) => write!(f, "member {m} has no pod yet"),
        }
    }
}

impl Wait {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Wait::NoAnswer => "no_answer",
            Wait::VoterDown(_) => "voter_down",
            Wait::WouldLoseQuorum(_) => "would_lose_quorum",
            Wait::NotInSync(_) => "not_in_sync",
            Wait::NoPod(_) => "no_pod",
        }
    }
}

/// The one step to take now.
pub fn plan(o: &Observation) -> Step {
    // A stop that is not a scale-in never waits on anything: release it first.
    let stopping_stays = o
        .pods
        .iter()
        .find(|(m, p)| p.terminating && !p.released && **m < o.target)
        .map(|(m, _)| *m);
    if let Some(m) = stopping_stays {
        return Step::Keep(m);
    }
    // Scaling to zero ends the ensemble: there is no membership left to keep whole.
    if o.target == 0 {
        return Step::Steady;
    }
    let Some(live) = &o.live else {
        return Step::Wait(Wait::NoAnswer);
    };

    // Leave: highest ordinal first, as the StatefulSet removes them (a lower one first only when
    // the higher one cannot go yet, e.g. a dead voter). When the voters that stay
    // would have no live majority (or none would stay), a join may have to come first.
    let mut held = None;
    for &m in live.voters.iter().rev().take_while(|m| **m >= o.target) {
        let mut rest: BTreeSet<u32> = live.voters.clone();
        rest.remove(&m);
        if !rest.is_empty() && o.majority_alive(&rest) {
            return Step::Leave(m);
        }
        held.get_or_insert(Wait::WouldLoseQuorum(m));
    }
    // A leaver already out of the voters: its stop is released by its own check.

    // Every voter that stays must be up before the membership changes again.
    if let Some(&m) = live.voters.iter().find(|m| !o.alive(**m)) {
        return Step::Wait(held.unwrap_or(Wait::VoterDown(m)));
    }

    // Join: lowest ordinal first, one at a time (a join is only planned with every voter up,
    // and the next one only once this one votes).
    if let Some(m) = (0..o.target).find(|m| !live.voters.contains(m)) {
        return match (o.pods.get(&m), held) {
            (Some(p), _) if p.ready && !p.terminating => Step::Join(m),
            (_, Some(wait)) => Step::Wait(wait),
            (None, None) => Step::Wait(Wait::NoPod(m)),
            (Some(_), None) => Step::Wait(Wait::NotInSync(m)),
        };
    }
    if let Some(wait) = held {
        return Step::Wait(wait);
    }

    // Rolling update, when the controller orders it: followers first (highest ordinal first),
    // the leader last, each once every member is back.
    if o.on_delete {
        if let Some((&m, _)) = o.pods.iter().find(|(_, p)| !p.ready || p.terminating) {
            return Step::Wait(Wait::NotInSync(m));
        }
        let stale = |m: &u32| o.pods.get(m).is_some_and(|p| !p.updated);
        let follower = o
            .pods
            .keys()
            .rev()
            .find(|m| stale(m) && live.leader != Some(**m));
        if let Some(&m) = follower.or_else(|| live.leader.as_ref().filter(|m| stale(m))) {
            return Step::Restart(m);
        }
    }
    Step::Steady
}
