//! The planner's rules, one case each, and properties over arbitrary recorded states: every
//! step keeps a live majority of voters, a stop that is not a scale-in removes nothing, and the
//! ensemble converges to its target from anywhere.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use crate::{Live, Observation, PodState, Step, Wait, plan};

fn up() -> PodState {
    PodState {
        ready: true,
        updated: true,
        ..PodState::default()
    }
}

fn ensemble(target: u32, pods: &[u32], voters: &[u32]) -> Observation {
    Observation {
        target,
        pods: pods.iter().map(|m| (*m, up())).collect(),
        live: Some(Live {
            voters: voters.iter().copied().collect(),
            learners: BTreeSet::new(),
            leader: voters.first().copied(),
        }),
        on_delete: true,
    }
}

#[test]
fn scale_out_promotes_one_synced_member_at_a_time_lowest_first() {
    let mut o = ensemble(5, &[0, 1, 2, 3, 4], &[0, 1, 2]);
    assert_eq!(plan(&o), Step::Join(3));
    // Not in sync yet: wait for it rather than promote the next one past it.
    o.pods.get_mut(&3).unwrap().ready = false;
    assert_eq!(plan(&o), Step::Wait(Wait::NotInSync(3)));
}

#[test]
fn scale_in_removes_the_highest_voter_first() {
    let o = ensemble(3, &[0, 1, 2, 3, 4], &[0, 1, 2, 3, 4]);
    assert_eq!(plan(&o), Step::Leave(4));
    let o = ensemble(3, &[0, 1, 2, 3], &[0, 1, 2, 3]);
    assert_eq!(plan(&o), Step::Leave(3));
    assert_eq!(plan(&ensemble(3, &[0, 1, 2], &[0, 1, 2])), Step::Steady);
}

#[test]
fn a_leave_waits_when_the_voters_that_stay_have_no_live_majority() {
    let mut o = ensemble(3, &[0, 1, 2, 3], &[0, 1, 2, 3]);
    o.pods.remove(&1);
    o.pods.remove(&2);
    assert_eq!(plan(&o), Step::Wait(Wait::WouldLoseQuorum(3)));
}

#[test]
fn a_restart_or_drain_below_the_target_is_released_and_removes_nothing() {
    let mut o = ensemble(3, &[0, 1, 2], &[0, 1, 2]);
    o.pods.get_mut(&1).unwrap().terminating = true;
    assert_eq!(plan(&o), Step::Keep(1));
    o.pods.get_mut(&1).unwrap().released = true;
    assert_eq!(plan(&o), Step::Wait(Wait::VoterDown(1)));
}

#[test]
fn no_answer_from_the_ensemble_changes_nothing() {
    let mut o = ensemble(5, &[0, 1, 2, 3, 4], &[0, 1, 2]);
    o.live = None;
    assert_eq!(plan(&o), Step::Wait(Wait::NoAnswer));
}

#[test]
fn a_rolling_update_restarts_followers_first_and_the_leader_last() {
    let mut o = ensemble(3, &[0, 1, 2], &[0, 1, 2]);
    for p in o.pods.values_mut() {
        p.updated = false;
    }
    o.live.as_mut().unwrap().leader = Some(2);
    assert_eq!(plan(&o), Step::Restart(1));
    o.pods.get_mut(&1).unwrap().updated = true;
    assert_eq!(plan(&o), Step::Restart(0));
    o.pods.get_mut(&0).unwrap().updated = true;
    assert_eq!(plan(&o), Step::Restart(2));
    // One at a time: a member not back yet holds the next restart.
    o.pods.get_mut(&0).unwrap().ready = false;
    assert_eq!(plan(&o), Step::Wait(Wait::VoterDown(0)));
}

#[test]
fn without_on_delete_the_statefulset_orders_updates_itself() {
    let mut o = ensemble(3, &[0, 1, 2], &[0, 1, 2]);
    o.on_delete = false;
    o.pods.get_mut(&1).unwrap().updated = false;
    assert_eq!(plan(&o), Step::Steady);
}

/// A world the planner acts on: pods come and go as a StatefulSet makes them, the product's
/// membership changes only through the planner's steps.
#[derive(Debug, Clone)]
struct World {
    o: Observation,
}

impl World {
    fn live(&self) -> &Live {
        self.o.live.as_ref().expect("the world always answers")
    }

    /// The StatefulSet's part: pods up to the target exist and come up; pods above it stop
    /// (their stop held while they still vote, as the profile's hook holds it).
    fn statefulset(&mut self) {
        for m in 0..self.o.target {
            let p = self.o.pods.entry(m).or_default();
            if !p.terminating {
                p.ready = true;
                p.updated = true;
            }
        }
        let leaving: Vec<u32> = self
            .o
            .pods
            .keys()
            .copied()
            .filter(|m| *m >= self.o.target)
            .collect();
        for m in leaving {
            if self.live().voters.contains(&m) {
                self.o.pods.get_mut(&m).expect("listed").terminating = true;
            } else {
                self.o.pods.remove(&m);
            }
        }
        // A released stop ends and the pod comes back.
        for p in self.o.pods.values_mut() {
            if p.terminating && p.released {
                *p = up();
            }
        }
    }

    /// Carries a step out; returns whether it changed the voters.
    fn apply(&mut self, step: Step) -> bool {
        let live = self.o.live.as_mut().expect("answers");
        match step {
            Step::Join(m) => {
                live.learners.remove(&m);
                live.voters.insert(m)
            }
            Step::Leave(m) => live.voters.remove(&m),
            Step::Keep(m) => {
                self.o.pods.get_mut(&m).expect("stopping pod").released = true;
                false
            }
            Step::Restart(m) => {
                self.o.pods.insert(m, PodState::default());
                false
            }
            Step::Wait(_) | Step::Steady => false,
        }
    }
}

fn arbitrary_world() -> impl Strategy<Value = World> {
    (
        1u32..8,
        proptest::collection::btree_set(0u32..9, 1..9),
        proptest::collection::btree_map(
            0u32..9,
            (any::<bool>(), any::<bool>(), any::<bool>()),
            0..9,
        ),
    )
        .prop_map(|(target, voters, pods)| {
            let mut pods: BTreeMap<u32, PodState> = pods
                .into_iter()
                .map(|(m, (ready, terminating, updated))| {
                    (
                        m,
                        PodState {
                            ready,
                            terminating,
                            updated,
                            released: false,
                        },
                    )
                })
                .collect();
            // An ensemble without a quorum to come cannot change its membership at all: bring
            // up leavers until the voters below the target or up make a majority.
            let coming = |pods: &BTreeMap<u32, PodState>| {
                voters
                    .iter()
                    .filter(|m| **m < target || pods.get(m).is_some_and(|p| p.ready))
                    .count()
            };
            for m in voters.iter().filter(|m| **m >= target) {
                if coming(&pods) > voters.len() / 2 {
                    break;
                }
                pods.insert(*m, up());
            }
            (target, voters, pods)
        })
        .prop_map(|(target, voters, pods)| World {
            o: Observation {
                target,
                pods,
                live: Some(Live {
                    leader: voters.iter().next().copied(),
                    voters,
                    learners: BTreeSet::new(),
                }),
                on_delete: true,
            },
        })
}

proptest! {
    #[test]
    fn every_step_is_safe_and_the_ensemble_converges(mut w in arbitrary_world()) {
        let mut steady = false;
        for _ in 0..200 {
            let before = w.live().voters.clone();
            let step = plan(&w.o);
            match step {
                Step::Join(m) => {
                    // One new voter, and only with every voter up: the old voters keep a
                    // majority of the new set, so the new member cannot outvote them.
                    prop_assert!(!before.contains(&m));
                    prop_assert!(before.iter().all(|v| w.o.alive(*v)));
                    prop_assert!(w.o.alive(m));
                }
                Step::Leave(m) => {
                    prop_assert!(m >= w.o.target, "only a scale-in removes a voter");
                    let mut rest = before.clone();
                    rest.remove(&m);
                    prop_assert!(w.o.majority_alive(&rest));
                }
                Step::Keep(m) => prop_assert!(m < w.o.target),
                Step::Restart(m) => {
                    prop_assert!(w.o.pods.values().all(|p| p.ready && !p.terminating));
                    prop_assert!(w.live().leader != Some(m) || w.o.pods.iter().all(|(o, p)| *o == m || p.updated));
                }
                Step::Wait(_) => {}
                Step::Steady => { steady = true; break; }
            }
            let changed = w.apply(step);
            prop_assert!(!changed || matches!(step, Step::Join(_) | Step::Leave(_)));
            let after = &w.live().voters;
            prop_assert!(after.symmetric_difference(&before).count() <= 1, "one member at a time");
            w.statefulset();
        }
        prop_assert!(steady, "did not converge: {:?}", w.o);
        let want: BTreeSet<u32> = (0..w.o.target).collect();
        prop_assert_eq!(&w.live().voters, &want);
    }
}
