//! tessera-serve: how Tessera's HTTP servers listen — rustls with a serving certificate reloaded
//! from disk without dropping connections (plain replace or Secret-volume symlink swap), HTTP/1.1
//! and HTTP/2 with header and handshake deadlines, and graceful shutdown on SIGTERM. The webhook
//! and the extender serve through it, so tests drive exactly what production runs.

mod budget;
pub mod certs;
pub mod client_auth;
mod conn;
pub mod expiry;
pub mod exposition;
mod limits;
mod refusals;
pub mod serve;
pub mod signal;
pub mod tls;

pub use client_auth::VerifiedClient;
pub use limits::Limits;
pub use refusals::{Reason, Refusals};
pub use serve::{serve_plain, serve_tls};
pub use signal::shutdown_signal;
