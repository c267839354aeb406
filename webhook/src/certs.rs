//! The certificates of the self-managed mode (`--self-managed-certs`, kept in the cluster by
//! `cert_sync`): a CA and a serving certificate for the webhook's Service.
//!
//! The CA lives ten years and is kept; only the serving certificate rotates (one year, renewed
//! 30 days before expiry), so the `caBundle` the apiserver trusts does not change under it.

use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// Lifetime of the CA.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);
/// Lifetime of a serving certificate.
const LEAF_LIFETIME: Duration = Duration::from_secs(365 * 86_400);
/// Renew a serving certificate this long before it expires.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);
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

/// DNS names the apiserver may use for `service` in `namespace`.
pub fn dns_names(service: &str, namespace: &str, cluster_domain: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.{cluster_domain}"),
    ]
}

fn ca_params(now: Duration) -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.distinguished_name.push(DnType::CommonName, CA_NAME);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = rcgen::date_time_ymd(1970, 1, 1) + now;
    p.not_after = rcgen::date_time_ymd(1970, 1, 1) + now + CA_LIFETIME;
    Ok(p)
}

/// A new CA, PEM (certificate, key); `now` is time since the Unix epoch.
pub fn new_ca(now: Duration) -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let cert = ca_params(now)?.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A serving pair for `names`, signed by the CA whose key is `ca_key`.
pub fn issue(
    ca_key: &str,
    names: Vec<String>,
    now: Duration,
) -> Result<(String, String), rcgen::Error> {
    let ca_key = KeyPair::from_pem(ca_key)?;
    // The issuer is identified by its name and key, both stable, so the CA certificate itself
    // need not be parsed back.
    let issuer = Issuer::new(ca_params(now)?, ca_key);
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(names)?;
    p.not_before = rcgen::date_time_ymd(1970, 1, 1) + now;
    p.not_after = rcgen::date_time_ymd(1970, 1, 1) + now + LEAF_LIFETIME;
    let cert = p.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// True when a certificate expiring at `not_after` (Unix seconds) must be renewed at `now`.
pub fn due(not_after: u64, now: Duration) -> bool {
    not_after <= (now + RENEW_BEFORE).as_secs()
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

fn pem_due(cert_pem: &str, now: Duration) -> bool {
    pem_not_after(cert_pem).is_none_or(|t| due(t, now))
}

/// When a PEM certificate expires (Unix seconds), if it can be read.
pub fn pem_not_after(cert_pem: &str) -> Option<u64> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).ok()?;
    tessera_serve::expiry::not_after(&der)
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
        let later = NOW + LEAF_LIFETIME - RENEW_BEFORE + Duration::from_secs(1);
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
        let loaded = crate::tls::load(&c, &k, &provider).unwrap();
        assert_eq!(loaded.not_after, NOW.as_secs() + LEAF_LIFETIME.as_secs());
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
