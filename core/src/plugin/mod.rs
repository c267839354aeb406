//! Every decision the device plugin makes, with no I/O: slot IDs, which pod an `Allocate` serves
//! and the env it gets, GPU health from XID events and its recovery, when to write the node's
//! inventory annotation, how to correct an assignment from the kubelet's PodResources, what each
//! share's container uses of its GPU, and when another device plugin owns the node's GPUs.
//!
//! The device plugin crate feeds these functions from NVML, the kubelet and the apiserver and acts
//! on their answers (DESIGN.md, "The contract between the parts"; STYLE.md 2.1).
//!
//! They live in core rather than in the device plugin crate because a second node agent, a DRA
//! driver, must make the same decisions (MPS readiness, the env a share gets) and I/O crates never
//! depend on each other.

pub mod accounting;
pub mod allocate;
pub mod cgroup;
pub mod coexist;
pub mod env;
pub mod health;
pub mod mps;
pub mod publish;
pub mod reconcile;
pub mod slots;
