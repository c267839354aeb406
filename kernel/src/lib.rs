//! tessera-kernel: what every part of Tessera shares, with no I/O — the `tessera.dev/` names,
//! Kubernetes quantities, a pod's GPU request (and its translation from gpushare's and HAMi's
//! names), the node GPU inventory, and the one codec for everything written into annotations.
//!
//! It holds no decision of its own beyond reading these: GPU scheduling is `tessera-core`'s,
//! injection `tessera-inject`'s. Keeping it apart means a change to scoring or to injection
//! recompiles neither the other nor this.

pub mod annotations;
pub mod ensemble;
pub mod hash;
pub mod inventory;
pub mod keys;
pub mod quantity;
pub mod request;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
