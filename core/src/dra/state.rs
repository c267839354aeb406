//! The DRA path's picture of the cluster: per node the GPUs its ResourceSlices publish, and the
//! shares allocated ResourceClaims hold of them, in a [`ClusterLedger`] of its own, so fit and
//! the policies read it exactly as they read the device-plugin path's.
//!
//! A GPU becomes a ledger GPU named `<pool>/<device>` (the allocation results name devices so);
//! a `gpu.tessera.dev/unhealthy` or any unknown NoSchedule taint makes it unhealthy, and
//! `gpu.tessera.dev/mps-not-ready` leaves it without isolation: whole GPUs only, the
//! device-plugin path's rule (the allocator itself keeps untolerated taints off). A claim is one
//! holder whatever the number of pods sharing it. Changed only through the named methods; a
//! claim seen before its slice waits, and is counted once the slice comes.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::affinity::Spread;
use crate::annotations::{Assignment, ContainerAssignment, GpuShare};
use crate::decide::View;
use crate::frag::{FragCache, TypicalPods};
use crate::hash::FnvMap;
use crate::inventory::{GpuInfo, Isolation, NodeInventory};
use crate::ledger::{ClusterLedger, HostCapacity, LedgerError, SharingPolicy};
use crate::request::{MILLI_PER_GPU, RunAs};
use crate::score::{Policy, ScoreContext};

use super::TAINT_MPS_NOT_READY;
use super::facts::{ClaimFacts, RequestShape, SliceFacts};

/// Shares one GPU may hold: DRA has no slot count, so this only keeps the ledger's slot check
/// from ever refusing (a GPU of 80 GiB holds at most 320 shares of 256 MiB).
pub const DRA_SLOTS_PER_GPU: u32 = 1 << 16;

/// Slices, claims and templates of the driver, and the ledger made of them.
#[derive(Debug, Clone, Default)]
pub struct DraCluster {
    ledger: ClusterLedger,
    mix: TypicalPods,
    frag: FragCache,
    spread: Spread,
    slices: FnvMap<String, SliceFacts>,
    claims: FnvMap<String, ClaimFacts>,
    templates: FnvMap<String, Vec<RequestShape>>,
    /// Claims whose shares cannot be counted yet (no slice for the pool, or over-commit), by pool.
    unplaced: FnvMap<String, BTreeSet<String>>,
}

impl DraCluster {
    /// An empty picture placing fractional shares by `sharing`, as the device-plugin path does.
    pub fn new(sharing: SharingPolicy) -> Self {
        DraCluster {
            ledger: ClusterLedger::new(DRA_SLOTS_PER_GPU).with_policy(sharing),
            ..Default::default()
        }
    }

    /// The decision view under `policy`: the same `decide` functions serve both paths.
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

    /// The ledger (GPUs named `<pool>/<device>`, holders named by claim).
    pub fn ledger(&self) -> &ClusterLedger {
        &self.ledger
    }

    /// The claim `namespace/name`, as last seen.
    pub fn claim(&self, key: &str) -> Option<&ClaimFacts> {
        self.claims.get(key)
    }

    /// The requests of template `namespace/name`, as last seen.
    pub fn template(&self, key: &str) -> Option<&Vec<RequestShape>> {
        self.templates.get(key)
    }

    /// Claims allocated to the driver and not counted (their slice not seen yet), sorted.
    pub fn unplaced_claims(&self) -> Vec<String> {
        let mut all: Vec<String> = self.unplaced.values().flatten().cloned().collect();
        all.sort();
        all
    }

    /// Recomputes the typical mix from the shares held (periodically, as for the other path),
    /// then the fragmentation cache.
    pub fn refresh_mix(&mut self) {
        self.mix = crate::cluster::mix_of(&self.ledger);
        self.refresh_frag();
    }

    /// True while the typical mix has no class (no share was held when it was last worked
    /// out): the watch then works it out again as soon as claims hold shares, since
    /// `fragmentation` scores against an empty mix rank nodes by their fixed order alone.
    pub fn mix_is_empty(&self) -> bool {
        self.mix.classes.is_empty()
    }

    /// Brings the fragmentation cache up to date after changes.
    pub fn refresh_frag(&mut self) {
        self.frag.refresh_touched(&mut self.ledger, &self.mix);
    }

    /// A slice was added or changed.
    pub fn apply_slice(&mut self, slice: SliceFacts) -> Vec<LedgerError> {
        let node = slice.node.clone();
        self.slices.insert(slice.name.clone(), slice);
        self.refresh_node(&node)
    }

    /// A slice was deleted.
    pub fn remove_slice(&mut self, name: &str) -> Vec<LedgerError> {
        match self.slices.remove(name) {
            Some(old) => self.refresh_node(&old.node),
            None => Vec::new(),
        }
    }

    /// After a re-list of slices: those not in `all` were deleted meanwhile.
    pub fn resync_slices(&mut self, all: Vec<SliceFacts>) -> Vec<LedgerError> {
        let seen: HashSet<&str> = all.iter().map(|s| s.name.as_str()).collect();
        let gone: Vec<String> = (self.slices.keys())
            .filter(|k| !seen.contains(k.as_str()))
            .cloned()
            .collect();
        let mut errors: Vec<LedgerError> = gone.iter().flat_map(|g| self.remove_slice(g)).collect();
        errors.extend(all.into_iter().flat_map(|s| self.apply_slice(s)));
        errors
    }

    /// A claim was added or changed.
    pub fn apply_claim(&mut self, claim: ClaimFacts) -> Vec<LedgerError> {
        if self.claims.get(&claim.key) == Some(&claim) {
            return Vec::new();
        }
        let key = claim.key.clone();
        self.forget_holding(&key);
        self.claims.insert(key.clone(), claim);
        self.hold(&key).err().into_iter().collect()
    }

    /// A claim was deleted: its shares are free.
    pub fn remove_claim(&mut self, key: &str) {
        self.forget_holding(key);
        self.claims.remove(key);
    }

    /// After a re-list of claims: those not in `all` were deleted meanwhile.
    pub fn resync_claims(&mut self, all: Vec<ClaimFacts>) -> Vec<LedgerError> {
        let seen: HashSet<&str> = all.iter().map(|c| c.key.as_str()).collect();
        let gone: Vec<String> = (self.claims.keys())
            .filter(|k| !seen.contains(k.as_str()))
            .cloned()
            .collect();
        for key in gone {
            self.remove_claim(&key);
        }
        all.into_iter().flat_map(|c| self.apply_claim(c)).collect()
    }

    /// A template (`namespace/name`) was added or changed.
    pub fn apply_template(&mut self, key: &str, requests: Vec<RequestShape>) {
        self.templates.insert(key.to_string(), requests);
    }

    /// A template was deleted.
    pub fn remove_template(&mut self, key: &str) {
        self.templates.remove(key);
    }

    /// After a re-list of templates.
    pub fn resync_templates(&mut self, all: Vec<(String, Vec<RequestShape>)>) {
        self.templates = all.into_iter().collect();
    }

    fn forget_holding(&mut self, key: &str) {
        self.ledger.release(key);
        for waiting in self.unplaced.values_mut() {
            waiting.remove(key);
        }
    }

    /// Re-reads node `node`'s GPUs from its slices, keeping the holdings that still apply and
    /// counting claims that waited for them.
    fn refresh_node(&mut self, node: &str) -> Vec<LedgerError> {
        let mut slices: Vec<&SliceFacts> =
            self.slices.values().filter(|s| s.node == node).collect();
        if slices.is_empty() {
            for claim in self.ledger.remove_node(node) {
                self.wait(&claim);
            }
            return Vec::new();
        }
        slices.sort_by(|a, b| a.name.cmp(&b.name));
        let pools: BTreeSet<String> = slices.iter().map(|s| s.pool.clone()).collect();
        let inventory = inventory(&slices);
        let dropped = self
            .ledger
            .upsert_node(node, None, &inventory, HostCapacity::untracked());
        for claim in dropped {
            self.wait(&claim);
        }
        let waiting: BTreeSet<String> = pools
            .iter()
            .filter_map(|p| self.unplaced.remove(p))
            .flatten()
            .collect();
        waiting.iter().filter_map(|c| self.hold(c).err()).collect()
    }

    fn wait(&mut self, claim: &str) {
        if let Some(pool) = self.claims.get(claim).and_then(|c| c.held.first()) {
            let pool = pool.pool.clone();
            self.unplaced
                .entry(pool)
                .or_default()
                .insert(claim.to_string());
        }
    }

    /// Counts the claim's shares in the ledger; a claim whose pool has no slice yet waits.
    fn hold(&mut self, key: &str) -> Result<(), LedgerError> {
        let Some(claim) = self.claims.get(key) else {
            return Ok(());
        };
        let Some(first) = claim.held.first() else {
            return Ok(());
        };
        let node = self.slices.values().find(|s| s.pool == first.pool);
        let Some(node) = node.map(|s| s.node.clone()) else {
            self.wait(key);
            return Ok(());
        };
        let assignment = assignment(claim, node, &self.ledger);
        let held = self
            .ledger
            .apply_assignment(key, &assignment, RunAs::Unstated);
        if held.is_err() {
            self.wait(key);
        }
        held
    }
}

/// The node's GPUs from its slices, in slice then device order.
fn inventory(slices: &[&SliceFacts]) -> NodeInventory {
    let gpus = slices.iter().flat_map(|s| {
        s.devices.iter().map(|d| GpuInfo {
            index: d.index,
            uuid: format!("{}/{}", s.pool, d.name),
            model: d.model.clone(),
            memory_mib: d.memory_mib,
            // `gpu.tessera.dev/unhealthy`, or a taint Tessera does not know.
            healthy: d.taints.iter().all(|t| t == TAINT_MPS_NOT_READY),
            mig: false,
            mps: true,
            isolation: match (
                d.taints.iter().any(|t| t == TAINT_MPS_NOT_READY),
                d.multi_user,
            ) {
                (true, _) => Isolation::None,
                (false, true) => Isolation::MpsMultiUser,
                (false, false) => Isolation::Mps,
            },
        })
    });
    NodeInventory {
        gpus: gpus.collect(),
    }
}

/// The claim's shares as an assignment on `node`, one container per request; a share that
/// names no amount holds the whole GPU.
fn assignment(claim: &ClaimFacts, node: String, ledger: &ClusterLedger) -> Assignment {
    let total = |uuid: &str| {
        ledger
            .node(&node)
            .and_then(|n| n.gpus.iter().find(|g| g.ident.uuid == uuid))
            .map_or(0, |g| g.mem_total_mib)
    };
    let mut by_request: BTreeMap<&str, Vec<GpuShare>> = BTreeMap::new();
    for s in &claim.held {
        let uuid = format!("{}/{}", s.pool, s.device);
        let share = GpuShare {
            mem_mib: s.mem_mib.unwrap_or_else(|| total(&uuid)),
            core_milli: s.core_milli.unwrap_or(MILLI_PER_GPU),
            uuid,
        };
        by_request.entry(&s.request).or_default().push(share);
    }
    let containers = by_request
        .into_iter()
        .map(|(request, gpus)| ContainerAssignment {
            container: request.to_string(),
            gpus,
            init: false,
        });
    Assignment {
        node,
        containers: containers.collect(),
    }
}
