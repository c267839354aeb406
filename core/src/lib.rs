//! tessera-core: every decision Tessera makes, with no I/O.
//!
//! The webhook, the extender, the device plugin and `tessera simulate` call these functions;
//! they decode, call, encode. Nothing here opens a file or a socket, spawns a runtime or talks to
//! the apiserver (STYLE.md, section 1).

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
