//! Client certificates: which CAs a server trusts for them (reloaded when the bundle file
//! changes, so a CA can be added before it signs anything), and the mark a request carries when
//! its connection presented a certificate those CAs verified.
//!
//! Client authentication is offered, not required, at the handshake: probes and scrapers reach
//! `/healthz`, `/readyz` and `/metrics` without a certificate, and the routes that need one
//! check for [`VerifiedClient`] (the extender's verbs). A certificate that is presented but does
//! not verify fails the handshake.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use tracing::{info, warn};

use crate::tls::TlsError;

/// Present on a request whose connection presented a client certificate that verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedClient;

/// The trusted client CAs, swappable while the server runs.
#[derive(Debug)]
pub struct ClientCas {
    current: RwLock<Arc<dyn ClientCertVerifier>>,
}

/// A verifier for client certificates chained to the CAs in the PEM bundle at `path`.
pub fn load_client_cas(
    path: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    verifier_from_pem(path, &pem, provider)
}

fn verifier_from_pem(
    path: &Path,
    pem: &[u8],
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let bad = |what: String| TlsError::Pem {
        path: path.to_path_buf(),
        what,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| bad(format!("not a PEM certificate bundle: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad("no CERTIFICATE block".into()));
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| bad(format!("client verifier: {e}")))
}

impl ClientCas {
    /// Trusts what `first` trusts.
    pub fn new(first: Arc<dyn ClientCertVerifier>) -> Arc<ClientCas> {
        Arc::new(ClientCas {
            current: RwLock::new(first),
        })
    }

    fn swap(&self, next: Arc<dyn ClientCertVerifier>) {
        match self.current.write() {
            Ok(mut g) => *g = next,
            Err(p) => *p.into_inner() = next,
        }
    }

    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl ClientCertVerifier for ClientCas {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: a client with one certificate (kube-scheduler) sends it regardless.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}

/// Polls the bundle at `path` every `every` and trusts a changed, valid bundle from the next
/// handshake on; a bundle that does not parse is logged and the old one kept.
pub async fn reload_client_cas(
    cas: Arc<ClientCas>,
    path: PathBuf,
    provider: Arc<CryptoProvider>,
    every: Duration,
    mut seen: Vec<u8>,
) {
    loop {
        tokio::time::sleep(every).await;
        let Ok(pem) = tokio::fs::read(&path).await else {
            continue;
        };
        if pem == seen {
            continue;
        }
        match verifier_from_pem(&path, &pem, &provider) {
            Ok(v) => {
                cas.swap(v);
                info!(bundle = %path.display(), "client CA bundle reloaded");
            }
            Err(e) => warn!(error = %e, "client CA bundle not reloaded; keeping the current one"),
        }
        seen = pem;
    }
}
