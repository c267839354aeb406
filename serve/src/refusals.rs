//! Requests and connections a server refused, by reason, for `/metrics`: a client over a
//! limit is otherwise invisible to the operator.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Why a request or connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// 413: a declared body over the limit.
    BodyTooLarge,
    /// 408: not received and answered within the request deadline.
    RequestTimeout,
    /// The TLS handshake failed.
    HandshakeFailed,
    /// The TLS handshake did not finish in time.
    HandshakeTimeout,
    /// A connection waited for a slot at the connection cap.
    ConnectionCap,
    /// A request body waited for the server's budget of buffered body bytes.
    BodyBudget,
    /// A request that needs a verified client certificate came without one.
    ClientCertificate,
    /// The connection ended on a protocol error (oversized or slow headers, an HTTP/2 error
    /// or GOAWAY, a reset).
    ConnectionError,
}

impl Reason {
    fn label(self) -> &'static str {
        match self {
            Reason::BodyTooLarge => "body_too_large",
            Reason::RequestTimeout => "request_timeout",
            Reason::HandshakeFailed => "handshake_failed",
            Reason::HandshakeTimeout => "handshake_timeout",
            Reason::ConnectionCap => "connection_cap",
            Reason::ConnectionError => "connection_error",
            Reason::BodyBudget => "body_budget_wait",
            Reason::ClientCertificate => "client_certificate_missing",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    reason: &'static str,
}

/// Refusal counters; clones count into the same family.
#[derive(Debug, Clone, Default)]
pub struct Refusals(Family<Labels, Counter>);

impl Refusals {
    /// Counters registered as `refused_total{reason}` in `registry` (under its prefix).
    pub fn register(registry: &mut Registry) -> Refusals {
        let r = Refusals::default();
        registry.register(
            "refused",
            "Requests and connections refused by the server, by reason",
            r.0.clone(),
        );
        r
    }

    /// Counts one refusal.
    pub fn count(&self, reason: Reason) {
        self.0
            .get_or_create(&Labels {
                reason: reason.label(),
            })
            .inc();
    }

    /// How many were counted for `reason`.
    pub fn get(&self, reason: Reason) -> u64 {
        self.0
            .get_or_create(&Labels {
                reason: reason.label(),
            })
            .get()
    }
}
