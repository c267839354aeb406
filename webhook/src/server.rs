//! Wiring of one webhook server: metrics into the caller's registry, the first certificate,
//! the state, the TLS config, the `--profiles` file, and — in [`Webhook::serve`] — the
//! certificate and profiles reloaders beside the HTTPS server, all stopped by one shutdown
//! future. `tessera webhook` and the tests use this.

use std::future::Future;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use tessera_serve::Limits;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::profiles::{self, FileError, Loaded};
use crate::routes::router;
use crate::state::WebhookState;
use crate::tls::{self, CertStore, TlsError};

/// Time past `--request-timeout-ms` before the server itself cuts a request off.
const REQUEST_SLACK: std::time::Duration = std::time::Duration::from_secs(2);

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The certificate pair at startup.
    #[error("serving certificate: {0}")]
    Certificate(#[from] TlsError),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// A webhook ready to serve.
pub struct Webhook {
    /// Shared state (profiles, readiness).
    pub state: Arc<WebhookState>,
    /// The serving certificate.
    pub certs: Arc<CertStore>,
    config: Config,
    provider: Arc<CryptoProvider>,
    tls: Arc<ServerConfig>,
    seen: (Vec<u8>, Vec<u8>),
    /// Content of the `--profiles` file being served, once loaded.
    profiles_seen: Option<Vec<u8>>,
}

impl Webhook {
    /// Loads the certificate named in `config` and registers metrics in `registry`.
    pub fn new(
        config: Config,
        provider: Arc<CryptoProvider>,
        registry: &mut Registry,
    ) -> Result<Webhook, StartError> {
        let metrics = Metrics::register(registry);
        let seen = tls::snapshot(&config.tls_cert, &config.tls_key)?;
        let first = tls::load(&config.tls_cert, &config.tls_key, &provider)?;
        metrics.cert_reload(Some(first.not_after));
        let certs = CertStore::new(first.key);
        let tls = tls::server_config(certs.clone(), provider.clone())?;
        let state = Arc::new(WebhookState::new(
            config.admission.clone(),
            metrics,
            config.request_timeout,
        ));
        Ok(Webhook {
            state,
            certs,
            config,
            provider,
            tls,
            seen,
            profiles_seen: None,
        })
    }

    /// Loads the `--profiles` file, when the config names one, and serves its profiles;
    /// [`Webhook::serve`] then reloads it when it changes. A file that cannot be read or is not
    /// YAML is an error: nothing would be served.
    pub fn load_profiles_file(&mut self) -> Result<(), FileError> {
        let Some(path) = self.config.profiles.clone() else {
            return Ok(());
        };
        let content = std::fs::read(&path).map_err(|source| FileError::Read {
            path: path.clone(),
            source,
        })?;
        let loaded = profiles::read_file(&path, &content)?;
        profiles::log_loaded(&path, &loaded);
        self.set_profiles(loaded);
        self.profiles_seen = Some(content);
        Ok(())
    }

    /// Serves the profiles in `loaded` (the invalid ones are counted) and becomes ready.
    pub fn set_profiles(&self, loaded: Loaded) {
        self.state
            .set_profiles(loaded.profiles, loaded.errors.len());
    }

    /// Serves on `listener` until `shutdown` resolves, reloading the certificate meanwhile.
    pub async fn serve(
        self,
        listener: TcpListener,
        registry: Arc<Registry>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let reloader = tls::reload(
            self.certs.clone(),
            (self.config.tls_cert.clone(), self.config.tls_key.clone()),
            self.provider.clone(),
            self.config.tls_reload,
            {
                let metrics = self.state.metrics().clone();
                move |not_after| metrics.cert_reload(not_after)
            },
            self.seen,
            stopped(stop_rx.clone()),
        );
        let reloader = tokio::spawn(reloader);
        let profiles = match (self.config.profiles.clone(), self.profiles_seen) {
            (Some(path), Some(taken)) => Some(tokio::spawn(profiles::reload(
                path,
                self.config.profiles_reload,
                self.state.clone(),
                taken,
                {
                    let metrics = self.state.metrics().clone();
                    move |ok| metrics.profile_reload(ok)
                },
                stopped(stop_rx.clone()),
            ))),
            _ => None,
        };
        let app = router(self.state.clone(), registry, self.config.max_body_bytes);
        let signal = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        };
        let limits = Limits {
            max_connections: self.config.max_connections,
            idle: self.config.idle_timeout,
            first_request: self
                .config
                .idle_timeout
                .min(Limits::default().first_request),
            // The handler answers 503 at its own limit; this only cuts off what never reaches it.
            request: self.config.request_timeout + REQUEST_SLACK,
            max_body_bytes: self.config.max_body_bytes as u64,
            // Reviews are small: this many at the limit may be buffered at once, across every
            // connection and stream (256 MiB of memory leaves room for decoding them).
            max_buffered_bytes: (self.config.max_body_bytes as u64).saturating_mul(16),
            refusals: self.state.metrics().refusals(),
        };
        tessera_serve::serve_tls(listener, self.tls, app, signal, self.config.drain, limits).await;
        let _ = reloader.await;
        if let Some(task) = profiles {
            let _ = task.await;
        }
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
