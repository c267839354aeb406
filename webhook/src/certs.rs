//! The certificates of the self-managed mode (`--self-managed-certs`, kept in the cluster by
//! `cert_sync`): a CA and a serving certificate for the webhook's Service, issued through
//! `tessera_serve::certs` (the CA is kept; only the serving pair rotates, so the `caBundle` the
//! apiserver trusts does not change under it).

use std::time::Duration;

pub use tessera_serve::certs::{RENEW_BEFORE, dns_names, due, pem_not_after};
use tessera_serve::certs::{issue_serving, pem_due};

const CA_NAME: &str = "tessera-webhook-ca";

/// A CA and the serving pair it signed, PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// CA certificate.
    pub ca_cert: String,
    /// CA private key.
    pub ca_key: String,
    /// Serving certificate.
    pub cert: String,
    /// Serving key.
    pub key: String,
}

/// A new CA, PEM (certificate, key); `now` is time since the Unix epoch.
pub fn new_ca(now: Duration) -> Result<(String, String), rcgen::Error> {
    tessera_serve::certs::new_ca(CA_NAME, now)
}

/// A serving pair for `names`, signed by the CA whose key is `ca_key`.
pub fn issue(
    ca_key: &str,
    names: Vec<String>,
    now: Duration,
) -> Result<(String, String), rcgen::Error> {
    issue_serving(CA_NAME, ca_key, names, now)
}

/// The bundle to keep, given what the Secret holds: the CA is kept when present, the serving
/// pair re-issued when missing or due.
pub fn next_bundle(
    held: Option<Bundle>,
    names: Vec<String>,
    now: Duration,
) -> Result<(Bundle, bool), rcgen::Error> {
    let (ca_cert, ca_key) = match &held {
        Some(b) if !b.ca_cert.is_empty() && !b.ca_key.is_empty() => {
            (b.ca_cert.clone(), b.ca_key.clone())
        }
        _ => new_ca(now)?,
    };
    if let Some(b) = &held
        && b.ca_cert == ca_cert
        && !b.cert.is_empty()
        && !pem_due(&b.cert, now)
    {
        return Ok((b.clone(), false));
    }
    let (cert, key) = issue(&ca_key, names, now)?;
    Ok((
        Bundle {
            ca_cert,
            ca_key,
            cert,
            key,
        },
        true,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Duration = Duration::from_secs(1_800_000_000);

    #[test]
    fn a_new_bundle_is_issued_then_kept_until_due() {
        let names = dns_names("tessera-webhook", "tessera-system", "cluster.local");
        let (first, fresh) = next_bundle(None, names.clone(), NOW).unwrap();
        assert!(fresh);
        let (same, fresh) = next_bundle(Some(first.clone()), names.clone(), NOW).unwrap();
        assert!(!fresh);
        assert_eq!(same, first);
        let later =
            NOW + tessera_serve::certs::LEAF_LIFETIME - RENEW_BEFORE + Duration::from_secs(1);
        let (renewed, fresh) = next_bundle(Some(first.clone()), names, later).unwrap();
        assert!(fresh);
        assert_eq!(
            renewed.ca_cert, first.ca_cert,
            "the CA is kept across renewals"
        );
        assert_ne!(renewed.cert, first.cert);
    }

    #[test]
    fn the_serving_pair_is_trusted_through_the_kept_ca_and_loads_in_rustls() {
        let names = dns_names("tessera-webhook", "tessera-system", "cluster.local");
        let (b, _) = next_bundle(None, names, NOW).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&c, &b.cert).unwrap();
        std::fs::write(&k, &b.key).unwrap();
        let provider = rustls::crypto::ring::default_provider();
        let loaded = tessera_serve::tls::load(&c, &k, &provider).unwrap();
        assert_eq!(
            loaded.not_after,
            NOW.as_secs() + tessera_serve::certs::LEAF_LIFETIME.as_secs()
        );
        // Verify the chain to the CA as a client would, for the Service's DNS name.
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::pem::PemObject;
        let ca = rustls::pki_types::CertificateDer::from_pem_slice(b.ca_cert.as_bytes()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots.into(),
            provider.into(),
        )
        .build()
        .unwrap();
        let leaf = loaded.key.cert[0].clone();
        let name =
            rustls::pki_types::ServerName::try_from("tessera-webhook.tessera-system.svc").unwrap();
        let at = rustls::pki_types::UnixTime::since_unix_epoch(NOW + Duration::from_secs(60));
        verifier
            .verify_server_cert(&leaf, &[], &name, &[], at)
            .unwrap();
    }
}
