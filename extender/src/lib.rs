//! tessera-extender: the kube-scheduler extender around the decisions in tessera-core.
//!
//! The `filter`, `prioritize`, `bind` and `preempt` verbs over HTTP in both request shapes
//! (`Nodes` and `NodeNames`), reservations with rollback and timeout, the apiserver binder, the
//! node and pod watches that keep the state, health, readiness and metrics; claim-bearing pods
//! are fitted and scored against the DRA path's GPUs (`dra_state`, `watch_dra`, `dra_verbs`). `cli/` serves it
//! (`tessera extender`).

pub mod api_binder;
pub mod bind;
pub mod binder;
pub mod cert_sync;
pub mod clock;
pub mod dra_state;
pub mod dra_verbs;
pub mod error;
pub mod filter;
pub mod leader;
pub mod metrics;
pub mod mtls;
pub mod options;
pub mod pending;
pub mod preempt;
pub mod prioritize;
pub mod routes;
pub mod slim_pod;
pub mod stale;
pub mod state;
pub mod watch;
pub mod watch_dra;
pub mod wire;

pub use binder::{BindFuture, BindTarget, Binder};
pub use options::Options;
pub use routes::router;
pub use state::{Cluster, Config, ExtenderState};
