//! The DRA path's state inside the extender: tessera-core's [`DraCluster`] behind its own lock
//! (its watches never wait on the node and pod watches'), the answers remembered for it, and
//! whether its three watches have listed. The decisions are core's; this only holds them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard};

use tessera_core::decide::Memo;
use tessera_core::dra::DraCluster;
use tessera_core::ledger::SharingPolicy;

/// Slices, claims and templates of driver `gpu.tessera.dev`, as the watches last saw them.
#[derive(Debug)]
pub struct DraState {
    cluster: RwLock<DraCluster>,
    memo: Mutex<Memo>,
    listed: AtomicBool,
}

impl DraState {
    /// An empty state placing fractional shares by `sharing`; counted as listed until watches
    /// start (a state filled by hand, in tests, waits for nothing).
    pub fn new(sharing: SharingPolicy) -> Self {
        DraState {
            cluster: RwLock::new(DraCluster::new(sharing)),
            memo: Mutex::default(),
            listed: AtomicBool::new(true),
        }
    }

    /// Readiness waits for the watches from now on (see `watch_dra::start`).
    pub fn expect_listing(&self) {
        self.listed.store(false, Ordering::Release);
    }

    /// Changes the picture; the fragmentation cache follows.
    pub fn update<T>(&self, change: impl FnOnce(&mut DraCluster) -> T) -> T {
        let mut cluster = self.cluster.write().unwrap_or_else(|p| p.into_inner());
        let out = change(&mut cluster);
        cluster.refresh_frag();
        out
    }

    /// Read access for a decision.
    pub fn read(&self) -> RwLockReadGuard<'_, DraCluster> {
        self.cluster.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Per-node answers for claim pods (a memo of its own: node indices are this ledger's).
    pub fn memo(&self) -> MutexGuard<'_, Memo> {
        self.memo.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the three watches listed (or the API absent: nothing to list).
    pub fn set_listed(&self) {
        self.listed.store(true, Ordering::Release);
    }

    /// True once slices, claims and templates have been listed.
    pub fn is_listed(&self) -> bool {
        self.listed.load(Ordering::Acquire)
    }
}
