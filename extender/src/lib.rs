//! tessera-extender: the kube-scheduler extender around the decisions in tessera-core.
//!
//! Today: the `filter`, `prioritize` and `bind` verbs over HTTP in both request shapes (`Nodes`
//! and `NodeNames`), reservations with rollback and timeout, health and readiness, and the shared
//! state they read. Still to come (see the extender issue): the apiserver binder and watchers
//! that fill the state, `preempt`, metrics, TLS and the `tessera extender` subcommand.

pub mod bind;
pub mod binder;
pub mod error;
pub mod routes;
pub mod state;
pub mod wire;

pub use binder::{BindFuture, BindTarget, Binder};
pub use routes::router;
pub use state::{Cluster, Config, ExtenderState};
