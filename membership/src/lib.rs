//! tessera-membership: what the membership controller does next to an ensemble (ZooKeeper,
//! KRaft controllers, any product a profile describes), decided from what it observed. Pure: the
//! controller observes (pods, the live membership the product reports) and carries the step
//! out (the profile's commands, a pod deletion).
//!
//! The rules, each one step at a time so every intermediate membership is safe:
//! - **leave** before **join**: a voter at or above the target (scale-in) is removed from the
//!   voters, highest ordinal first, only while the voters that stay still have a live majority;
//! - a member stopping for any other reason (restart, drain, eviction) is **kept**: nothing is
//!   removed, its stop is only released;
//! - **join**: one new member at a time, in sync first (ready, a learner), promoted to voter
//!   only when every voter is healthy, so two new voters never form a quorum of their own;
//! - **restart** (rolling update): followers first, the leader last, each only when every
//!   member is back and in sync.

mod observe;
mod plan;

pub use observe::{Live, Observation, PodState};
pub use plan::{Step, Wait, plan};

#[cfg(test)]
mod tests;
