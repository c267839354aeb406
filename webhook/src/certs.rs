//! Self-managed serving certificate (opt-in, `--self-managed-certs`): a CA and a serving
//! certificate for the webhook's Service, kept in a Secret, the CA written into the
//! MutatingWebhookConfiguration's `caBundle`, and the serving certificate re-issued before it
//! expires, so an expired certificate never blocks deployments.
//!
//! The CA lives ten years and is kept; only the serving certificate rotates (one year, renewed
//! 30 days before expiry), so the `caBundle` the apiserver trusts does not change under it. The
//! files the server reads are rewritten too, and the reloader in `tls` picks them up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use thiserror::Error;
use tracing::info;

/// Lifetime of the CA.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);
/// Lifetime of a serving certificate.
const LEAF_LIFETIME: Duration = Duration::from_secs(365 * 86_400);
/// Renew a serving certificate this long before it expires.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);
const CA_NAME: &str = "tessera-webhook-ca";

/// Why certificates could not be issued or stored.
#[derive(Debug, Error)]
pub enum CertError {
    /// rcgen refused.
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The apiserver refused.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// Client failure.
        #[source]
        source: kube::Error,
    },
    /// The certificate files could not be written.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// I/O failure.
        #[source]
        source: std::io::Error,
    },
}

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
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    match CertificateDer::from_pem_slice(cert_pem.as_bytes()) {
        Ok(der) => tessera_serve::expiry::not_after(&der).is_none_or(|t| due(t, now)),
        Err(_) => true,
    }
}

/// Where the certificate lives and what trusts it.
#[derive(Debug, Clone)]
pub struct SelfManaged {
    /// Namespace of the Secret and the Service.
    pub namespace: String,
    /// Secret holding `ca.crt`, `ca.key`, `tls.crt`, `tls.key`.
    pub secret: String,
    /// The webhook's Service name.
    pub service: String,
    /// MutatingWebhookConfiguration whose `caBundle`s are set.
    pub webhook_configuration: String,
    /// Cluster DNS domain.
    pub cluster_domain: String,
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn api_err(what: String) -> impl FnOnce(kube::Error) -> CertError {
    move |source| CertError::Api { what, source }
}

/// Makes sure a valid pair is stored, trusted and on disk at `files`; returns when the serving
/// certificate is next due.
pub async fn ensure(
    client: &kube::Client,
    s: &SelfManaged,
    files: (&Path, &Path),
) -> Result<Duration, CertError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &s.namespace);
    let held = secrets
        .get_opt(&s.secret)
        .await
        .map_err(api_err(format!(
            "reading Secret {}/{}",
            s.namespace, s.secret
        )))?
        .map(|secret| {
            let data = secret.data.unwrap_or_default();
            let get = |k: &str| {
                data.get(k)
                    .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                    .unwrap_or_default()
            };
            Bundle {
                ca_cert: get("ca.crt"),
                ca_key: get("ca.key"),
                cert: get("tls.crt"),
                key: get("tls.key"),
            }
        });
    let names = dns_names(&s.service, &s.namespace, &s.cluster_domain);
    let (bundle, fresh) = next_bundle(held, names, now())?;
    if fresh {
        let data = BTreeMap::from([
            ("ca.crt", &bundle.ca_cert),
            ("ca.key", &bundle.ca_key),
            ("tls.crt", &bundle.cert),
            ("tls.key", &bundle.key),
        ])
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect();
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(s.secret.clone()),
                namespace: Some(s.namespace.clone()),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(data),
            ..Default::default()
        };
        secrets
            .patch(
                &s.secret,
                &PatchParams::apply("tessera-webhook").force(),
                &Patch::Apply(&secret),
            )
            .await
            .map_err(api_err(format!(
                "writing Secret {}/{}",
                s.namespace, s.secret
            )))?;
        info!(secret = %s.secret, "serving certificate issued");
    }
    set_ca_bundle(client, s, &bundle.ca_cert).await?;
    write_if_changed(files.0, &bundle.cert)?;
    write_if_changed(files.1, &bundle.key)?;
    let not_after = pem_not_after(&bundle.cert);
    Ok(Duration::from_secs(
        not_after.saturating_sub((now() + RENEW_BEFORE).as_secs()),
    ))
}

fn pem_not_after(cert_pem: &str) -> u64 {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .ok()
        .and_then(|d| tessera_serve::expiry::not_after(&d))
        .unwrap_or(0)
}

async fn set_ca_bundle(client: &kube::Client, s: &SelfManaged, ca: &str) -> Result<(), CertError> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let what = format!("MutatingWebhookConfiguration {}", s.webhook_configuration);
    let Some(mwc) = api
        .get_opt(&s.webhook_configuration)
        .await
        .map_err(api_err(what.clone()))?
    else {
        return Ok(());
    };
    let mut mwc = mwc;
    let mut changed = false;
    for w in mwc.webhooks.iter_mut().flatten() {
        if w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(ca.as_bytes()) {
            w.client_config.ca_bundle = Some(ByteString(ca.as_bytes().to_vec()));
            changed = true;
        }
    }
    if !changed {
        return Ok(());
    }
    // A replace carries the resourceVersion read above: a concurrent edit makes it fail and the
    // next round retries, instead of overwriting it.
    api.replace(&s.webhook_configuration, &PostParams::default(), &mwc)
        .await
        .map_err(api_err(what))?;
    info!(configuration = %s.webhook_configuration, "caBundle updated");
    Ok(())
}

/// Replaces `path` atomically (write beside, rename) when its content differs.
fn write_if_changed(path: &Path, content: &str) -> Result<(), CertError> {
    if std::fs::read(path).is_ok_and(|old| old == content.as_bytes()) {
        return Ok(());
    }
    let err = |source| CertError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Keeps the certificate valid until the process ends: re-checks when the serving certificate
/// is due, at least hourly, and after a failure in a minute.
pub async fn run(client: kube::Client, s: SelfManaged, cert: PathBuf, key: PathBuf) {
    loop {
        let wait = match ensure(&client, &s, (&cert, &key)).await {
            Ok(due_in) => due_in.min(Duration::from_secs(3600)),
            Err(e) => {
                tracing::warn!(error = %e, "self-managed certificate not refreshed");
                Duration::from_secs(60)
            }
        };
        tokio::time::sleep(wait).await;
    }
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
        write_if_changed(&c, &b.cert).unwrap();
        write_if_changed(&k, &b.key).unwrap();
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
