//! tessera-core: the GPU scheduling domain, with no I/O — the ledger, fit, fragmentation and
//! scoring, the cluster picture and the extender's decisions, preemption, spreading, and the node
//! agents' decisions (`plugin`).
//!
//! The extender, the device plugin and the simulator call these functions; they decode, call,
//! encode. The names, quantities, requests, inventory and annotation codec every part shares are
//! `tessera-kernel`'s, re-exported here. Admission injection lives in `tessera-inject` over the
//! kernel alone, the simulator in `tessera-sim` over this crate. Nothing here opens a file or a
//! socket, spawns a runtime or talks to the apiserver (STYLE.md, section 1).

pub use tessera_kernel::{annotations, hash, inventory, keys, quantity, request};

pub mod affinity;
pub mod cluster;
pub mod decide;
pub mod dra;
pub mod fit;
pub mod frag;
pub mod ledger;
pub mod plugin;
pub mod preempt;
pub mod rng;
pub mod score;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
