//! Certificates Tessera issues for itself: a long-lived CA per link, and the serving and client
//! pairs it signs. Used by the webhook (apiserver → webhook) and the extender
//! (kube-scheduler → extender, both directions authenticated).
//!
//! A CA lives ten years and is kept; only the pairs it signs rotate (one year, renewed 30 days
//! before expiry), so whoever trusts the CA keeps trusting every renewed pair without a restart.

use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Lifetime of a CA.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);
/// Lifetime of a serving or client certificate.
pub const LEAF_LIFETIME: Duration = Duration::from_secs(365 * 86_400);
/// Renew a serving or client certificate this long before it expires.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);

fn ca_params(ca_name: &str, now: Duration) -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.distinguished_name.push(DnType::CommonName, ca_name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = rcgen::date_time_ymd(1970, 1, 1) + now;
    p.not_after = rcgen::date_time_ymd(1970, 1, 1) + now + CA_LIFETIME;
    Ok(p)
}

/// A new CA named `ca_name`, PEM (certificate, key); `now` is time since the Unix epoch.
pub fn new_ca(ca_name: &str, now: Duration) -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let cert = ca_params(ca_name, now)?.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A leaf signed by the CA `ca_name` whose key is `ca_key`.
fn sign(
    ca_name: &str,
    ca_key: &str,
    mut p: CertificateParams,
    now: Duration,
) -> Result<(String, String), rcgen::Error> {
    let ca_key = KeyPair::from_pem(ca_key)?;
    // The issuer is identified by its name and key, both stable, so the CA certificate itself
    // need not be parsed back.
    let issuer = Issuer::new(ca_params(ca_name, now)?, ca_key);
    let key = KeyPair::generate()?;
    p.not_before = rcgen::date_time_ymd(1970, 1, 1) + now;
    p.not_after = rcgen::date_time_ymd(1970, 1, 1) + now + LEAF_LIFETIME;
    let cert = p.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A serving pair for `names` (DNS names or IP addresses).
pub fn issue_serving(
    ca_name: &str,
    ca_key: &str,
    names: Vec<String>,
    now: Duration,
) -> Result<(String, String), rcgen::Error> {
    sign(ca_name, ca_key, CertificateParams::new(names)?, now)
}

/// A client pair whose subject is `common_name`, usable for TLS client authentication only.
pub fn issue_client(
    ca_name: &str,
    ca_key: &str,
    common_name: &str,
    now: Duration,
) -> Result<(String, String), rcgen::Error> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    sign(ca_name, ca_key, p, now)
}

/// DNS names a client inside the cluster may use for `service` in `namespace`.
pub fn dns_names(service: &str, namespace: &str, cluster_domain: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.{cluster_domain}"),
    ]
}

/// True when a certificate expiring at `not_after` (Unix seconds) must be renewed at `now`.
pub fn due(not_after: u64, now: Duration) -> bool {
    not_after <= (now + RENEW_BEFORE).as_secs()
}

/// True when the PEM certificate is due, or cannot be read (then it is replaced).
pub fn pem_due(cert_pem: &str, now: Duration) -> bool {
    pem_not_after(cert_pem).is_none_or(|t| due(t, now))
}

/// When a PEM certificate expires (Unix seconds), if it can be read.
pub fn pem_not_after(cert_pem: &str) -> Option<u64> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).ok()?;
    crate::expiry::not_after(&der)
}

/// Replaces `path` atomically (write beside, rename) when its content differs, so a reader
/// polling it never sees half a file.
pub fn write_if_changed(path: &Path, content: &str) -> std::io::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == content.as_bytes()) {
        return Ok(());
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)
}
