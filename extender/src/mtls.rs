//! The certificates of the kube-scheduler → extender link (`--self-managed-certs`): a CA of its
//! own, the extender's serving pair and kube-scheduler's client pair, both signed by it.
//!
//! The CA is dedicated to this link, so a client certificate that chains to it is
//! kube-scheduler's. It is kept for ten years; the two pairs renew 30 days before they expire.
//! kube-scheduler reloads its client pair from the mounted files (client-go does for file-based
//! pairs) but reads its CA file once, which is why the CA must not change under it.

use std::time::Duration;

use tessera_serve::certs::{issue_client, issue_serving, new_ca, pem_due};

/// Subject of the CA.
pub const CA_NAME: &str = "tessera-extender-ca";
/// Subject of kube-scheduler's client certificate.
pub const CLIENT_NAME: &str = "tessera-scheduler";

/// The link's CA and the two pairs it signs, PEM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pairs {
    /// CA certificate (the extender's `--client-ca`, kube-scheduler's `caFile`).
    pub ca_cert: String,
    /// CA private key (only the extender reads it).
    pub ca_key: String,
    /// The extender's serving certificate.
    pub serving_cert: String,
    /// Its key.
    pub serving_key: String,
    /// kube-scheduler's client certificate.
    pub client_cert: String,
    /// Its key.
    pub client_key: String,
}

/// Secret keys, in the order written.
pub const KEYS: [&str; 6] = [
    "ca.crt",
    "ca.key",
    "tls.crt",
    "tls.key",
    "client.crt",
    "client.key",
];

impl Pairs {
    /// The fields in [`KEYS`] order.
    pub fn fields(&self) -> [&String; 6] {
        [
            &self.ca_cert,
            &self.ca_key,
            &self.serving_cert,
            &self.serving_key,
            &self.client_cert,
            &self.client_key,
        ]
    }

    /// From values in [`KEYS`] order.
    pub fn from_fields(mut get: impl FnMut(&str) -> String) -> Pairs {
        Pairs {
            ca_cert: get(KEYS[0]),
            ca_key: get(KEYS[1]),
            serving_cert: get(KEYS[2]),
            serving_key: get(KEYS[3]),
            client_cert: get(KEYS[4]),
            client_key: get(KEYS[5]),
        }
    }
}

/// What to keep, given what the Secret holds: the CA when present; each pair re-issued when
/// missing, due, or signed by a CA that was just made. The flag says whether anything changed.
pub fn next_pairs(
    held: Option<Pairs>,
    names: Vec<String>,
    now: Duration,
) -> Result<(Pairs, bool), rcgen::Error> {
    let held = held.unwrap_or_default();
    let mut next = held.clone();
    let new_authority = held.ca_cert.is_empty() || held.ca_key.is_empty();
    if new_authority {
        (next.ca_cert, next.ca_key) = new_ca(CA_NAME, now)?;
    }
    if new_authority || next.serving_cert.is_empty() || pem_due(&next.serving_cert, now) {
        (next.serving_cert, next.serving_key) = issue_serving(CA_NAME, &next.ca_key, names, now)?;
    }
    if new_authority || next.client_cert.is_empty() || pem_due(&next.client_cert, now) {
        (next.client_cert, next.client_key) =
            issue_client(CA_NAME, &next.ca_key, CLIENT_NAME, now)?;
    }
    let changed = next != held;
    Ok((next, changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_serve::certs::{LEAF_LIFETIME, RENEW_BEFORE, dns_names};

    const NOW: Duration = Duration::from_secs(1_800_000_000);

    #[test]
    fn the_ca_is_kept_and_each_pair_renews_when_due() {
        let names = dns_names("tessera-extender", "tessera-system", "cluster.local");
        let (first, changed) = next_pairs(None, names.clone(), NOW).unwrap();
        assert!(changed);
        assert!(first.fields().iter().all(|f| !f.is_empty()));
        let (same, changed) = next_pairs(Some(first.clone()), names.clone(), NOW).unwrap();
        assert!(!changed);
        assert_eq!(same, first);

        let later = NOW + LEAF_LIFETIME - RENEW_BEFORE + Duration::from_secs(1);
        let (renewed, changed) = next_pairs(Some(first.clone()), names, later).unwrap();
        assert!(changed);
        assert_eq!(
            renewed.ca_cert, first.ca_cert,
            "kube-scheduler's caFile stays valid"
        );
        assert_ne!(renewed.serving_cert, first.serving_cert);
        assert_ne!(renewed.client_cert, first.client_cert);
    }
}
