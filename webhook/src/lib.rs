//! tessera-webhook: the mutating admission webhook around the injection decisions in
//! `tessera_inject`.
//!
//! `POST /mutate` answers admission.k8s.io/v1 AdmissionReviews for pods, `POST /mutate-dra` the
//! same for namespaces on the DRA path (GPU shares moved to ResourceClaims, whose templates the
//! `templates` controller makes); `/healthz`, `/readyz`
//! and `/metrics` beside it; served over rustls with the certificate reloaded from disk. Profiles
//! come from `--profiles FILE` or from the cluster (`watch`).
//! `tessera webhook` in `cli/` parses flags, sets up logging and signals, and calls [`Webhook`].

pub mod admission;
pub mod cert_sync;
pub mod certs;
pub mod config;
pub mod crd;
pub mod error;
pub mod events;
pub mod metrics;
pub mod peers;
pub mod profiles;
pub mod review;
pub mod routes;
pub mod server;
pub mod state;
pub mod templates;
pub mod watch;

/// TLS loading and reload, shared with the other servers (`tessera-serve`).
pub use tessera_serve::tls;

pub use config::{Config, WebhookArgs};
pub use routes::router;
pub use server::{StartError, Webhook};
pub use state::WebhookState;
