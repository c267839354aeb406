//! Listening for the server subcommands: bind, then serve plain HTTP or HTTPS (certificate
//! reloaded from disk) through tessera-serve until SIGTERM or Ctrl-C, draining in-flight requests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tessera_serve::Limits;
use tessera_serve::client_auth::{ClientCas, load_client_cas, reload_client_cas};
use tessera_serve::tls::{self, CertStore};

pub use tessera_serve::shutdown_signal;

/// How often certificate files are checked for a new pair.
const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// Longest in-flight requests may take to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(25);

/// Certificate and key files for HTTPS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA bundle for client certificates (asked for, and marked on requests when verified).
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// Both flags, or neither (clap enforces the pairing).
    pub fn from_flags(cert: Option<PathBuf>, key: Option<PathBuf>) -> Option<Self> {
        Some(TlsFiles {
            cert: cert?,
            key: key?,
            client_ca: None,
        })
    }

    /// Also asks clients for a certificate chained to the CAs in `client_ca`.
    pub fn with_client_ca(mut self, client_ca: Option<PathBuf>) -> Self {
        self.client_ca = client_ca;
        self
    }
}

/// Serves `router` on `addr` (HTTPS when `tls` is given) within `limits` until the process is
/// told to stop; the serving certificate's notAfter (Unix seconds) is kept in `not_after`.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    tls: Option<TlsFiles>,
    limits: Limits,
    not_after: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let Some(files) = tls else {
        tessera_serve::serve_plain(listener, router, shutdown_signal(), DRAIN, limits).await;
        return Ok(());
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let seen = tls::snapshot(&files.cert, &files.key)?;
    let first = tls::load(&files.cert, &files.key, &provider)?;
    not_after.store(first.not_after, Ordering::Relaxed);
    let store = CertStore::new(first.key);
    let clients = match &files.client_ca {
        Some(path) => {
            let seen = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
            let cas = ClientCas::new(load_client_cas(path, &provider)?);
            tokio::spawn(reload_client_cas(
                cas.clone(),
                path.clone(),
                provider.clone(),
                RELOAD_EVERY,
                seen,
            ));
            Some(cas as Arc<dyn rustls::server::danger::ClientCertVerifier>)
        }
        None => None,
    };
    let config = tls::server_config_with_clients(store.clone(), clients, provider.clone())?;
    tokio::spawn(tls::reload(
        store,
        (files.cert, files.key),
        provider,
        RELOAD_EVERY,
        move |reloaded| {
            if let Some(t) = reloaded {
                not_after.store(t, Ordering::Relaxed);
            }
        },
        seen,
        std::future::pending(),
    ));
    tessera_serve::serve_tls(listener, config, router, shutdown_signal(), DRAIN, limits).await;
    Ok(())
}

/// The stop signal of a node agent (device plugin, MPS daemon): a watch that turns true on
/// SIGTERM or Ctrl-C, for the agent and its small HTTP server alike.
pub fn stop_on_signal() -> tokio::sync::watch::Receiver<bool> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    stopped
}

/// Binds `addr` (named by `flag` in errors) and serves `router` over plain HTTP until `stopped`
/// turns true: a node agent's `/healthz`, `/readyz` and `/metrics`.
pub async fn serve_agent_http(
    addr: SocketAddr,
    flag: &str,
    router: Router,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("{flag} {addr}"))?;
    Ok(tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
    }))
}

/// `/metrics` of a registry, in the format the scraper's `Accept` header asks for.
pub async fn metrics_response(
    registry: Arc<prometheus_client::registry::Registry>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        tracing::warn!(error = %e, "encoding metrics");
    }
    tessera_serve::exposition::respond(&headers, text)
}
