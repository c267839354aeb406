//! tessera-core: the GPU scheduling domain and the small kernel every crate shares, with no I/O.
//!
//! The extender, the device plugin and the simulator call these functions; they decode, call,
//! encode. Admission injection lives in `tessera-inject` and the simulator in `tessera-sim`, both
//! over this crate. Nothing here opens a file or a socket, spawns a runtime or talks to the
//! apiserver (STYLE.md, section 1).

pub mod affinity;
pub mod annotations;
pub mod cluster;
pub mod decide;
pub mod fit;
pub mod frag;
pub mod hash;
pub mod inventory;
pub mod keys;
pub mod ledger;
pub mod plugin;
pub mod preempt;
pub mod quantity;
pub mod request;
pub mod rng;
pub mod score;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
