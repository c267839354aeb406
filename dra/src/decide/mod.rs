//! The DRA driver's decisions, with no I/O (STYLE.md 2.1): the ResourceSlice a node's GPUs
//! become ([`slice`]), the share a ResourceClaim's allocation gives and the container edits
//! that enforce it ([`share`], [`cdi`]), and the prepared claims with their checkpoint
//! ([`prepared`]).
//!
//! They reuse the device plugin's rules from `tessera_core::plugin` (MPS readiness, the env a
//! share gets, the MPS client mounts) rather than restating them, so the two node agents hand a
//! container the same thing.

pub mod cdi;
pub mod prepared;
pub mod share;
pub mod slice;
