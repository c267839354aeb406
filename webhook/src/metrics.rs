//! The webhook's Prometheus metrics, registered into a registry the caller owns (STYLE.md,
//! section 7). Labels are bounded: a result from a fixed set and a profile name from the loaded
//! profiles, never a pod name or UID.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How one `/mutate` request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed with a patch.
    Patched,
    /// Selected, already injected: allowed, no patch.
    Unchanged,
    /// Not selected: allowed, no patch.
    Skipped,
    /// A profile could not render: `allowed: false`.
    Denied,
    /// Not a decodable AdmissionReview: HTTP 400.
    BadRequest,
    /// Body too large, aborted or too slow: no answer.
    Failed,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Patched => "patched",
            Outcome::Unchanged => "unchanged",
            Outcome::Skipped => "skipped",
            Outcome::Denied => "denied",
            Outcome::BadRequest => "bad_request",
            Outcome::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    result: &'static str,
    profile: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

/// Handles to every webhook metric.
#[derive(Debug, Clone)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    duration: Histogram,
    profiles_loaded: Gauge,
    profiles_invalid: Gauge,
    cert_expiry: Gauge<i64, AtomicI64>,
    cert_not_after: std::sync::Arc<AtomicU64>,
    cert_reloads: Family<ReloadLabels, Counter>,
    profile_reloads: Family<ReloadLabels, Counter>,
    refusals: tessera_serve::Refusals,
}

impl Metrics {
    /// Where the server counts what it refused (`tessera_webhook_refused_total{reason}`).
    pub fn refusals(&self) -> tessera_serve::Refusals {
        self.refusals.clone()
    }

    /// Creates the metrics and registers them under `tessera_webhook_`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            requests: Family::default(),
            // 25 µs to ~0.8 s.
            duration: Histogram::new(exponential_buckets(0.000_025, 2.0, 16)),
            profiles_loaded: Gauge::default(),
            profiles_invalid: Gauge::default(),
            cert_expiry: Gauge::default(),
            cert_not_after: Default::default(),
            cert_reloads: Family::default(),
            profile_reloads: Family::default(),
            refusals: tessera_serve::Refusals::default(),
        };
        let r = registry.sub_registry_with_prefix("tessera_webhook");
        let m = Metrics {
            refusals: tessera_serve::Refusals::register(r),
            ..m
        };
        r.register(
            "requests",
            "Admission requests by result and profile",
            m.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time to answer /mutate",
            m.duration.clone(),
        );
        r.register(
            "profiles_loaded",
            "Valid injection profiles being served",
            m.profiles_loaded.clone(),
        );
        r.register(
            "profiles_invalid",
            "Injection profiles rejected by validation",
            m.profiles_invalid.clone(),
        );
        r.register(
            "tls_cert_expiry_seconds",
            "Seconds until the serving certificate expires",
            m.cert_expiry.clone(),
        );
        r.register(
            "tls_reloads",
            "Serving certificate reloads by result",
            m.cert_reloads.clone(),
        );
        r.register(
            "profile_reloads",
            "Reloads of the --profiles file by result (error: unreadable or not YAML, the served profiles kept)",
            m.profile_reloads.clone(),
        );
        m
    }

    /// Counts one request; `profiles` are those it applied or denied on (none: label `""`).
    pub fn request(&self, outcome: Outcome, profiles: &[String], seconds: f64) {
        self.duration.observe(seconds);
        let result = outcome.label();
        if profiles.is_empty() {
            self.requests
                .get_or_create(&RequestLabels {
                    result,
                    profile: String::new(),
                })
                .inc();
        }
        for p in profiles {
            self.requests
                .get_or_create(&RequestLabels {
                    result,
                    profile: p.clone(),
                })
                .inc();
        }
    }

    /// Records the profile counts after a load.
    pub fn profiles(&self, loaded: usize, invalid: usize) {
        self.profiles_loaded.set(loaded as i64);
        self.profiles_invalid.set(invalid as i64);
    }

    /// Records a certificate reload attempt and, on success, the new expiry (Unix seconds).
    pub fn cert_reload(&self, not_after: Option<u64>) {
        let result = if not_after.is_some() { "ok" } else { "error" };
        self.cert_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
        if let Some(t) = not_after {
            self.cert_not_after.store(t, Ordering::Relaxed);
        }
    }

    /// Records a reload of the profiles file: served (`true`) or refused (`false`).
    pub fn profile_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.profile_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
    }

    /// Refreshes values computed at scrape time.
    pub fn before_scrape(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let not_after = self.cert_not_after.load(Ordering::Relaxed);
        self.cert_expiry.set(not_after as i64 - now as i64);
    }
}
