//! The node view's layout, shared by the node boxes (`nodes`) and the GPU bars inside them
//! (`bars`): the sizes of each drawing mode and what a node's drawing knows besides the node.

use std::collections::HashMap;

use tessera_core::affinity::SpreadFault;

/// Sizes of one drawing mode, px.
pub struct Geometry {
    /// Width of one bar.
    pub bar_w: f64,
    /// Between a GPU's memory and compute bars.
    pub bar_gap: f64,
    /// Between two GPUs.
    pub(super) gpu_gap: f64,
    /// Height of a bar (a whole GPU).
    pub bar_h: f64,
    /// Inside a node box, around its GPUs.
    pub(super) pad: f64,
    /// Above the bars (node name and details).
    pub header: f64,
    /// Below the bars.
    pub(super) footer: f64,
    /// The narrowest node box.
    pub(super) min_w: f64,
    /// Between node boxes, and between rows.
    pub(super) row_gap: f64,
}

pub(super) const DETAILED: Geometry = Geometry {
    bar_w: 9.0,
    bar_gap: 1.0,
    gpu_gap: 7.0,
    bar_h: 90.0,
    pad: 8.0,
    header: 32.0,
    footer: 30.0,
    min_w: 120.0,
    row_gap: 10.0,
};

pub(super) const COMPACT: Geometry = Geometry {
    bar_w: 3.0,
    bar_gap: 0.0,
    gpu_gap: 2.0,
    bar_h: 28.0,
    pad: 3.0,
    header: 3.0,
    footer: 3.0,
    min_w: 12.0,
    row_gap: 4.0,
};

impl Geometry {
    /// Width of a node box holding `gpus` GPUs.
    pub(super) fn node_w(&self, gpus: usize) -> f64 {
        let n = gpus as f64;
        let bars = n * (2.0 * self.bar_w + self.bar_gap) + (n - 1.0).max(0.0) * self.gpu_gap;
        (2.0 * self.pad + bars).max(self.min_w)
    }

    /// Height of a node box.
    pub(super) fn node_h(&self) -> f64 {
        self.header + self.bar_h + self.footer
    }
}

/// What a node's drawing needs to know besides the node.
pub struct View<'a> {
    /// Sizes of the mode drawn.
    pub geo: &'a Geometry,
    /// One colour per pod (else totals).
    pub detailed: bool,
    /// Pod name to colour.
    pub colours: HashMap<&'a str, String>,
    /// Spreading faults by node name.
    pub(super) faults: HashMap<&'a str, Vec<&'a SpreadFault>>,
}
