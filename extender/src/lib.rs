//! tessera-extender: the kube-scheduler extender around the decisions in tessera-core.
//!
//! Today: the `filter` and `prioritize` verbs over HTTP in both request shapes (`Nodes` and
//! `NodeNames`), health and readiness, and the shared state they read. Still to come (see the
//! extender issue): watchers that fill the state, `bind` with reservations, `preempt`, metrics,
//! TLS and the `tessera extender` subcommand.

pub mod error;
pub mod routes;
pub mod state;
pub mod wire;

pub use routes::router;
pub use state::{Cluster, Config, ExtenderState};
