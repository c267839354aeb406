//! Which shares a GPU may take, from the isolation its node reports (DESIGN.md, "Isolation: MPS
//! run by Tessera"), and which Linux user a single-user MPS node serves.
//!
//! Without a live MPS daemon the MPS limits are ignored (measured on an H200: a container given
//! 8 GiB / 25% took 24 GiB and the whole GPU), so by default such a GPU takes whole-GPU
//! containers only. The operator may opt into soft sharing (gpushare's model: shares are
//! accounting, the workloads are trusted to keep to them).

use crate::inventory::Isolation;
use crate::request::RunAs;

use super::NodeLedger;

/// What the ledger places on fractional shares of GPUs without live isolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SharingPolicy {
    /// Fractional shares only where an MPS daemon enforces them (the default).
    #[default]
    IsolatedOnly,
    /// Fractional shares on any healthy GPU; unenforced ones are trusted (`--soft-sharing`).
    Soft,
}

/// What one GPU may take now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// No isolation: whole-GPU containers only.
    WholeOnly,
    /// Shares of any user (multi-user MPS, or soft sharing).
    AnyUser,
    /// Shares, but every MPS client on the node runs as one user (MPS without `-M`).
    OneUser,
}

impl Sharing {
    /// The sharing a GPU with `isolation` gets under `policy`.
    pub fn of(isolation: Isolation, policy: SharingPolicy) -> Self {
        match (isolation, policy) {
            (Isolation::MpsMultiUser, _) => Sharing::AnyUser,
            (Isolation::Mps, _) => Sharing::OneUser,
            (Isolation::None, SharingPolicy::Soft) => Sharing::AnyUser,
            (Isolation::None, SharingPolicy::IsolatedOnly) => Sharing::WholeOnly,
        }
    }
}

impl NodeLedger {
    /// True when some GPU of the node is behind a single-user MPS server.
    pub fn single_user_mps(&self) -> bool {
        self.single_user_mps
    }

    /// The user the node's single-user MPS server serves now: the user of the pods holding
    /// shares on its GPUs (`None` when none does). Whole-GPU containers count too, since on an
    /// MPS-managed GPU they are MPS clients as well.
    pub fn mps_user(&self) -> Option<RunAs> {
        self.mps_user
    }

    /// Whether a pod running as `run_as` may take a GPU of this node's single-user MPS server.
    pub fn mps_user_allows(&self, run_as: RunAs) -> bool {
        if !self.single_user_mps() {
            return true;
        }
        // A pod of several users would wait on itself on one server.
        run_as != RunAs::Mixed && self.mps_user.is_none_or(|u| u == run_as)
    }

    /// Works out [`NodeLedger::mps_user`] again from the holders (after a change).
    pub(super) fn refresh_mps_user(&mut self) {
        // Most nodes have no single-user server: nothing to track on every apply and release.
        if !self.single_user_mps {
            return;
        }
        let gpus = &self.gpus;
        let on_single_user = |h: &super::Holding| {
            h.placement.shares().any(|s| {
                gpus.get(s.gpu)
                    .is_some_and(|g| g.sharing == Sharing::OneUser)
            })
        };
        let mut users = self
            .holders
            .values()
            .filter(|h| on_single_user(h))
            .map(|h| h.run_as);
        let first = users.next();
        // Holders of several users (a rebuild after the driver lost `-M`) block everyone new.
        self.mps_user = match first {
            Some(u) if users.all(|v| v == u) => Some(u),
            Some(_) => Some(RunAs::Mixed),
            None => None,
        };
    }
}
