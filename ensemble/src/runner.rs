//! Which member runs a membership change: a voter that stays (the leader first), or, for
//! products whose join is run by the joiner itself (KRaft's `add-controller` reads the joining
//! node's own configuration), the joining member.

use tessera_membership::Live;

/// The members, in order of preference, that may run the change of `member`; `running` says
/// whether a member's pod is up and not stopping.
pub fn candidates(
    member: u32,
    joining: bool,
    add_in_member: bool,
    live: &Live,
    target: u32,
    running: impl Fn(u32) -> bool,
) -> Vec<u32> {
    if joining && add_in_member {
        return if running(member) {
            vec![member]
        } else {
            Vec::new()
        };
    }
    let mut order: Vec<u32> = live
        .voters
        .iter()
        .copied()
        .filter(|o| *o != member && *o < target.max(1) && running(*o))
        .collect();
    order.sort_by_key(|o| Some(*o) != live.leader);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> Live {
        Live {
            voters: [0, 1, 2, 3, 4].into(),
            leader: Some(2),
            ..Live::default()
        }
    }

    #[test]
    fn a_change_runs_in_a_staying_voter_the_leader_first() {
        // Removing 4 on the way to 3: never in 4 or 3 (both leaving), the leader first.
        assert_eq!(
            candidates(4, false, false, &live(), 3, |_| true),
            vec![2, 0, 1]
        );
        // A stopping member runs nothing.
        assert_eq!(
            candidates(4, false, false, &live(), 3, |o| o != 2),
            vec![0, 1]
        );
    }

    #[test]
    fn a_join_the_profile_runs_in_the_joiner_runs_only_there() {
        assert_eq!(candidates(5, true, true, &live(), 6, |_| true), vec![5]);
        assert!(candidates(5, true, true, &live(), 6, |o| o != 5).is_empty());
        // Leaving is always run by a voter that stays.
        assert_eq!(
            candidates(4, false, true, &live(), 4, |_| true),
            vec![2, 0, 1, 3]
        );
    }
}
