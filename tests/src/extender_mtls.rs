//! The harness's extender as a cluster runs it: Tessera's own server stack over HTTPS, asking
//! for a client certificate from the extender's CA (made here, as `--self-managed-certs` would),
//! so kube-scheduler reaches it as shipped (`tlsConfig`, HTTP/2 by ALPN) rather than over the
//! plain HTTP/1.1 of [`Harness::extender`], whose few idle connections kube-scheduler's client
//! keeps per host make it reconnect under load.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tessera_extender::ExtenderState;
use tessera_extender::router;
use tessera_serve::certs;
use tessera_serve::client_auth::{ClientCas, load_client_cas};
use tessera_serve::tls::{self, CertStore};

use crate::cluster::Harness;

/// Where kube-scheduler's client files are (`client.crt`, `client.key`, `ca.crt`), as the
/// extender's Secret is mounted; pass it to `scheduler::scheduler_config_mtls`.
pub struct ClientFiles {
    /// The directory.
    pub dir: PathBuf,
    _keep: tempfile::TempDir,
}

/// Writes a CA, a serving pair for 127.0.0.1 and a client pair into `dir`.
fn issue(dir: &Path) {
    const CA: &str = "tessera-extender-e2e-ca";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let (ca_crt, ca_key) = certs::new_ca(CA, now).unwrap();
    let (crt, key) = certs::issue_serving(CA, &ca_key, vec!["127.0.0.1".into()], now).unwrap();
    let (client_crt, client_key) = certs::issue_client(CA, &ca_key, "kube-scheduler", now).unwrap();
    for (name, pem) in [
        ("ca.crt", ca_crt),
        ("tls.crt", crt),
        ("tls.key", key),
        ("client.crt", client_crt),
        ("client.key", client_key),
    ] {
        std::fs::write(dir.join(name), pem).unwrap();
    }
}

impl Harness {
    /// As [`Harness::extender`], served over mutual TLS by `tessera_serve` with the limits'
    /// defaults; verbs require the verified client certificate, as `--client-ca` makes them.
    pub async fn extender_mtls(
        &self,
    ) -> (
        Arc<ExtenderState>,
        SocketAddr,
        ClientFiles,
        tokio::task::JoinHandle<()>,
    ) {
        let keep = tempfile::tempdir().unwrap();
        let dir = keep.path().to_path_buf();
        issue(&dir);
        let (state, watching) = self.extender_state_watching(true).await;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pair = tls::load(&dir.join("tls.crt"), &dir.join("tls.key"), &provider).unwrap();
        let cas = ClientCas::new(load_client_cas(&dir.join("ca.crt"), &provider).unwrap());
        let config = tls::server_config_with_clients(
            CertStore::new(pair.key),
            Some(cas as Arc<dyn rustls::server::danger::ClientCertVerifier>),
            provider,
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(state.clone());
        tokio::spawn(tessera_serve::serve_tls(
            listener,
            config,
            app,
            std::future::pending::<()>(),
            Duration::from_secs(1),
            tessera_serve::Limits::default(),
        ));
        (state, addr, ClientFiles { dir, _keep: keep }, watching)
    }
}
