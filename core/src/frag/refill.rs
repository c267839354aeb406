//! How much of a GPU's free compute the typical mix is expected to leave idle for good.
//!
//! Once a cluster is full, the GPU compute that stays idle is mostly slivers that no arriving
//! pod fits: a 0.81-GPU share leaves 0.19 that only the rare pods of 0.19 or less can use, two
//! 0.47 shares leave 0.06. FGD's measure sees only the next pod of each class; this looks
//! further down the same mix. A GPU with `f` free is offered arriving pods one at a time, in the
//! proportions the mix asks for GPU compute; a pod that fits takes its share and the rest is
//! offered on, and the first that does not fit ends it (in a full cluster every hole competes
//! with all the others, so an offer it cannot take is a chance gone):
//!
//! `idle(f) = (1 - fits(f)) * f + sum over sizes r <= f of p(r) * idle(f - r)`
//!
//! where `p(r)` is the mix's share of GPU demand at per-GPU size `r` (weight × GPU count) and
//! `fits(f)` the sum of those with `r <= f`. Letting every hole wait for a pod that fits
//! instead (dropping the first term) left more GPUs idle on every one of the 13 trace lists.

use std::fmt;
use std::sync::OnceLock;

use super::TypicalPods;
use crate::request::MILLI_PER_GPU;

/// Expected idle compute for each amount of free compute of one GPU, against one mix.
#[derive(Debug, Clone, PartialEq)]
pub struct RefillTable {
    /// Indexed by free compute, thousandths of a GPU (0–1000).
    idle: Box<[f32]>,
}

impl RefillTable {
    /// The table for `mix`. Classes without GPUs, or asking no compute, take no part: a mix
    /// of those alone gives `idle(f) = f`, which leaves every choice to the other measures.
    pub fn of(mix: &TypicalPods) -> Self {
        let mut demand: Vec<(usize, f64)> = Vec::new();
        for c in &mix.classes {
            let size = c.demand.core_milli.min(MILLI_PER_GPU) as usize;
            if c.demand.gpus == 0 || size == 0 {
                continue;
            }
            let rate = c.weight * f64::from(c.demand.gpus);
            match demand.iter_mut().find(|(s, _)| *s == size) {
                Some((_, r)) => *r += rate,
                None => demand.push((size, rate)),
            }
        }
        // Rates become each size's share of the offers.
        let total: f64 = demand.iter().map(|(_, r)| r).sum();
        demand.iter_mut().for_each(|(_, r)| *r /= total);
        let mut idle = vec![0.0f64; MILLI_PER_GPU as usize + 1];
        for f in 0..idle.len() {
            let (mut fits, mut refilled) = (0.0, 0.0);
            for &(size, p) in demand.iter().filter(|(s, _)| *s <= f) {
                fits += p;
                refilled += p * idle[f - size];
            }
            idle[f] = (1.0 - fits) * f as f64 + refilled;
        }
        RefillTable {
            idle: idle.into_iter().map(|v| v as f32).collect(),
        }
    }

    /// Expected idle compute left for good on a GPU with `free` compute (clamped to one GPU).
    pub fn idle(&self, free: u32) -> f64 {
        f64::from(self.idle[free.min(MILLI_PER_GPU) as usize])
    }

    /// How much a share that takes a GPU from `before` to `after` free changes it: negative
    /// when the share leaves less to waste than there was.
    pub fn change(&self, before: u32, after: u32) -> f64 {
        self.idle(after) - self.idle(before)
    }
}

/// The table of a [`TypicalPods`], worked out on first use. A copy of the mix starts without
/// one (it may be changed before use), and it takes no part in comparing mixes: it follows from
/// the classes.
#[derive(Default)]
pub struct RefillMemo(OnceLock<RefillTable>);

impl RefillMemo {
    pub(super) fn get_or_init(&self, mix: &TypicalPods) -> &RefillTable {
        self.0.get_or_init(|| RefillTable::of(mix))
    }
}

impl Clone for RefillMemo {
    fn clone(&self) -> Self {
        RefillMemo::default()
    }
}

impl PartialEq for RefillMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for RefillMemo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "RefillMemo(worked out)"
        } else {
            "RefillMemo(not yet)"
        })
    }
}
