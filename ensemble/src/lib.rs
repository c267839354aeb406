//! tessera-ensemble: the membership controller (`tessera ensemble`). For every StatefulSet
//! whose pods a profile with `identity.membership` selects, it observes the live ensemble
//! through the product's own tools, decides the next step with [`tessera_membership::plan`],
//! carries it out, and records the membership on the StatefulSet (`tessera.dev/membership`),
//! where the webhook and `tessera inspect` read it. Only the elected replica acts.
//!
//! It reaches members with `pods/exec` of the commands the profile names, not a client of
//! each product's admin protocol: a new middleware is then a new profile, the commands run
//! with whatever credentials the product's container already has, and the controller needs no
//! network path to the pods.

pub mod exec;
pub mod metrics;
pub mod observe;
pub mod options;
pub mod reconcile;
pub mod runner;

pub use options::Options;
