//! The serving certificate: loaded from PEM files, handed to rustls through a resolver whose key
//! can be swapped, and reloaded when the files' content changes.
//!
//! Content is polled rather than watched: it catches a plain rewrite of the files and a
//! Kubernetes Secret volume's `..data` symlink swap alike. A new pair is taken only when both
//! parse and the key matches the certificate; otherwise the old one stays, the failure is logged
//! and counted, and the pair is tried again when the files change next. Open connections keep
//! the session they have; new handshakes get the new certificate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use thiserror::Error;
use tokio::sync::watch;
use tracing::{info, warn};

/// Why a certificate pair was not taken.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// Not PEM of the expected kind.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// rustls refused the pair (unsupported key, key does not match the certificate).
    #[error("{cert} and {key}: {source}")]
    Pair {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// rustls' reason.
        #[source]
        source: rustls::Error,
    },
}

/// A loaded pair and what the server reports about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The pair for rustls.
    pub key: Arc<CertifiedKey>,
    /// The certificate's notAfter, Unix seconds (0 when it cannot be read).
    pub not_after: u64,
}

/// Reads and checks the pair at `cert` and `key`.
pub fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Loaded, TlsError> {
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    from_pem(cert, &cert_pem, key, &key_pem, provider)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn from_pem(
    cert: &Path,
    cert_pem: &[u8],
    key: &Path,
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<Loaded, TlsError> {
    let pem_err = |path: &Path, what: String| TlsError::Pem {
        path: path.to_path_buf(),
        what,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(pem_err(cert, "no CERTIFICATE block".into()));
    }
    let private = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| pem_err(key, format!("no usable PEM private key: {e}")))?;
    let not_after = crate::expiry::not_after(&chain[0]).unwrap_or(0);
    let pair =
        CertifiedKey::from_der(chain, private, provider).map_err(|source| TlsError::Pair {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            source,
        })?;
    Ok(Loaded {
        key: Arc::new(pair),
        not_after,
    })
}

/// The current certificate, shared by the TLS acceptor and the reloader.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
    generation: watch::Sender<u64>,
}

impl CertStore {
    /// A store serving `first`.
    pub fn new(first: Arc<CertifiedKey>) -> Arc<CertStore> {
        Arc::new(CertStore {
            current: RwLock::new(first),
            generation: watch::Sender::new(0),
        })
    }

    /// Serves `next` to every new handshake.
    pub fn swap(&self, next: Arc<CertifiedKey>) {
        match self.current.write() {
            Ok(mut g) => *g = next,
            Err(p) => *p.into_inner() = next,
        }
        self.generation.send_modify(|g| *g += 1);
    }

    /// Counts swaps; tests and callers await changes on it.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A rustls server config (TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1) serving from `store`.
pub fn server_config(
    store: Arc<CertStore>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    server_config_with_clients(store, None, provider)
}

/// As [`server_config`], also asking clients for a certificate that `clients` verifies (the
/// extender's `ClientCas`: offered, and marked on each request when it verified).
pub fn server_config_with_clients(
    store: Arc<CertStore>,
    clients: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let builder =
        ServerConfig::builder_with_provider(provider).with_safe_default_protocol_versions()?;
    let builder = match clients {
        Some(cas) => builder.with_client_cert_verifier(cas),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_cert_resolver(store);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Polls `cert` and `key` every `every` and swaps a changed, valid pair into `store` until
/// `stop` resolves. `seen` is the content already served (cert, key). `on_reload` hears every
/// attempt: the new certificate's notAfter (Unix seconds), or `None` when the pair was refused.
pub async fn reload(
    store: Arc<CertStore>,
    paths: (PathBuf, PathBuf),
    provider: Arc<CryptoProvider>,
    every: Duration,
    on_reload: impl Fn(Option<u64>),
    mut seen: (Vec<u8>, Vec<u8>),
    stop: impl std::future::Future<Output = ()>,
) {
    let (cert, key) = paths;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(every) => {}
        }
        let (Ok(c), Ok(k)) = (tokio::fs::read(&cert).await, tokio::fs::read(&key).await) else {
            // Mid-swap, or gone for a moment: try again at the next tick.
            continue;
        };
        if (&c, &k) == (&seen.0, &seen.1) {
            continue;
        }
        match from_pem(&cert, &c, &key, &k, &provider) {
            Ok(loaded) => {
                store.swap(loaded.key);
                on_reload(Some(loaded.not_after));
                info!(cert = %cert.display(), not_after = loaded.not_after, "serving certificate reloaded");
            }
            Err(e) => {
                on_reload(None);
                warn!(error = %e, "serving certificate not reloaded; keeping the current one");
            }
        }
        seen = (c, k);
    }
}

/// Reads the pair's current content, to start [`reload`] from.
pub fn snapshot(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    Ok((read(cert)?, read(key)?))
}
