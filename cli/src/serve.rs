//! Serving a router on a TCP listener until SIGTERM or Ctrl-C, draining in-flight requests.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use axum::Router;

/// Certificate and key files for HTTPS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// Both flags, or neither (clap enforces the pairing).
    pub fn from_flags(cert: Option<PathBuf>, key: Option<PathBuf>) -> Option<Self> {
        Some(TlsFiles {
            cert: cert?,
            key: key?,
        })
    }
}

/// Serves `router` on `addr` (HTTPS when `tls` is given) until the process is told to stop.
pub async fn serve(addr: SocketAddr, router: Router, tls: Option<TlsFiles>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    if let Some(tls) = tls {
        anyhow::bail!(
            "HTTPS for this server is not available yet (--tls-cert {})",
            tls.cert.display()
        );
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")
}

/// Resolves on SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}
