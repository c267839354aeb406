//! What one client may hold of a server: connections, deadlines and body size. Shared by the
//! accept loop (`serve`) and each connection's life (`conn`).

use std::time::Duration;

/// Longest a client may take to send request headers (HTTP/1; also between keep-alive requests).
pub(crate) const HEADERS: Duration = Duration::from_secs(10);

/// What one client may hold of a server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most connections served at once. At the cap the listener is not polled: new connections
    /// wait in the kernel's backlog until one closes.
    pub max_connections: usize,
    /// Longest a connection may wait for its first request after the TLS handshake.
    pub first_request: Duration,
    /// Longest a connection may stay open with no request in flight after its first (HTTP/1
    /// keep-alive and HTTP/2 alike).
    pub idle: Duration,
    /// Longest from a request's headers to its response, its body included; past it the
    /// answer is 408.
    pub request: Duration,
    /// Largest body accepted: a request declaring a larger Content-Length is answered 413
    /// before any of it is read.
    pub max_body_bytes: u64,
    /// Most request-body bytes buffered at once across every connection and HTTP/2 stream
    /// (see `budget`); a body past it waits for others to finish.
    pub max_buffered_bytes: u64,
    /// Where refusals are counted (register them with [`crate::Refusals::register`]).
    pub refusals: crate::Refusals,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            first_request: HEADERS,
            idle: Duration::from_secs(30),
            request: Duration::from_secs(30),
            max_body_bytes: 64 << 20,
            max_buffered_bytes: 128 << 20,
            refusals: crate::Refusals::default(),
        }
    }
}
