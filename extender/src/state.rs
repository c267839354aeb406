//! The extender's view of the cluster, shared by every request: the GPU ledger, group
//! membership, the typical request mix and its fragmentation cache, behind one lock.
//! Watchers (and tests) change it through `update`; verbs read it through `view`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

use tessera_core::affinity::Spread;
use tessera_core::decide::View;
use tessera_core::frag::{FragCache, TypicalPods};
use tessera_core::ledger::ClusterLedger;
use tessera_core::request::Translation;
use tessera_core::score::{Policy, ScoreContext};

/// Everything a decision reads.
#[derive(Debug, Default)]
pub struct Cluster {
    /// GPU accounting.
    pub ledger: ClusterLedger,
    /// Group membership.
    pub spread: Spread,
    /// Typical request mix for the fragmentation policies.
    pub mix: TypicalPods,
    frag: FragCache,
}

impl Cluster {
    /// The decision view under `policy`.
    pub fn view(&self, policy: Policy) -> View<'_> {
        View {
            ledger: &self.ledger,
            spread: &self.spread,
            policy,
            ctx: ScoreContext {
                mix: &self.mix,
                frag: Some(&self.frag),
            },
        }
    }
}

/// Settings of the extender's decisions.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Scoring policy.
    pub policy: Policy,
    /// Device-plugin slots per GPU.
    pub slots_per_gpu: u32,
    /// Foreign request names to read (pods normally arrive already translated by the webhook).
    pub translation: Translation,
}

/// Shared extender state.
#[derive(Debug)]
pub struct ExtenderState {
    cluster: RwLock<Cluster>,
    config: Config,
    ready: AtomicBool,
}

impl ExtenderState {
    /// An empty, not-yet-ready state.
    pub fn new(config: Config) -> Self {
        let cluster = Cluster {
            ledger: ClusterLedger::new(config.slots_per_gpu),
            ..Default::default()
        };
        ExtenderState {
            cluster: RwLock::new(cluster),
            config,
            ready: AtomicBool::new(false),
        }
    }

    /// The settings.
    pub fn config(&self) -> Config {
        self.config
    }

    /// Changes the cluster; the fragmentation cache is brought up to date afterwards.
    pub fn update<T>(&self, change: impl FnOnce(&mut Cluster) -> T) -> T {
        let mut cluster = self
            .cluster
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let out = change(&mut cluster);
        let Cluster {
            ledger, mix, frag, ..
        } = &mut *cluster;
        frag.refresh(ledger, mix);
        out
    }

    /// Read access for a decision.
    pub fn read(&self) -> RwLockReadGuard<'_, Cluster> {
        self.cluster
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks the caches synced (readiness).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// True once the caches are synced.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}
