//! tessera-tests: cross-crate and end-to-end tests live in `tests/tests/`; shared helpers here.

pub mod bounds;
pub mod cluster;
pub mod e2e;
pub mod extender_mtls;
pub mod http;
pub mod kustomize;
pub mod process;
pub mod promtool;
pub mod replicas;
pub mod scheduler;
pub mod standin;
pub mod tls_client;
