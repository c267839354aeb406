//! Helpers shared by the CLI's end-to-end tests.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tessera_tests::e2e::KillOnDrop;

/// Writes a serving pair for 127.0.0.1 (`tls.crt`, `tls.key`) under `dir`, made by the webhook's
/// own generator, and returns the CA certificate, PEM.
pub fn serving_files(dir: &Path) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let (ca_cert, ca_key) = tessera_webhook::certs::new_ca(now).unwrap();
    let (cert, key) =
        tessera_webhook::certs::issue(&ca_key, vec!["127.0.0.1".into()], now).unwrap();
    std::fs::write(dir.join("tls.crt"), cert).unwrap();
    std::fs::write(dir.join("tls.key"), key).unwrap();
    ca_cert
}

/// A `tessera webhook` serving the shipped ZooKeeper profile from its file, with a serving pair
/// written under `dir` by [`serving_files`].
#[allow(dead_code)] // not every test binary starts one
pub struct FileModeWebhook {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The CA of its serving certificate, PEM.
    pub ca: String,
    /// Its log file.
    pub log: PathBuf,
    _process: KillOnDrop,
}

/// Starts a [`FileModeWebhook`] in `dir`, adding `extra` flags (`--log-level` and the like are
/// global, so they may follow the subcommand).
#[allow(dead_code)] // not every test binary starts one
pub fn file_mode_webhook(dir: &Path, extra: &[&OsStr]) -> FileModeWebhook {
    let profiles =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/profiles/zookeeper.yaml");
    file_mode_webhook_with(dir, &profiles, extra)
}

/// [`file_mode_webhook`] serving the profiles in file `profiles`.
#[allow(dead_code)] // not every test binary starts one
pub fn file_mode_webhook_with(dir: &Path, profiles: &Path, extra: &[&OsStr]) -> FileModeWebhook {
    let ca = serving_files(dir);
    let addr = tessera_tests::process::free_addr();
    let listen = addr.to_string();
    let log = dir.join("webhook.log");
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let mut args: Vec<&OsStr> = vec![
        "webhook".as_ref(),
        "--listen".as_ref(),
        listen.as_ref(),
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
        "--profiles".as_ref(),
        profiles.as_os_str(),
    ];
    args.extend_from_slice(extra);
    let process =
        tessera_tests::process::spawn_logged(Path::new(env!("CARGO_BIN_EXE_tessera")), args, &log);
    // Registering a webhook before it listens makes the apiserver's first calls fail with
    // "connection refused" (v1.36 calls a new configuration sooner than v1.32 did).
    if let Err(e) = wait_ready_tls(addr, &ca) {
        panic!(
            "the webhook never answered /readyz 200: {e}\nlog:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    FileModeWebhook {
        addr,
        ca,
        log,
        _process: process,
    }
}

/// Waits (blocking, up to 30 s) until the webhook at `addr` answers `/readyz` with 200 over TLS
/// verified with `ca_pem`; the last failure otherwise.
pub fn wait_ready_tls(addr: SocketAddr, ca_pem: &str) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| e.to_string())?;
    let start = std::time::Instant::now();
    loop {
        let last = match https_get(addr, &ca, ServerName::from(addr.ip()), "/readyz") {
            Ok(answer) if answer.starts_with("HTTP/1.1 200") => return Ok(()),
            Ok(answer) => answer.lines().next().unwrap_or_default().to_string(),
            Err(e) => e,
        };
        if start.elapsed() > std::time::Duration::from_secs(30) {
            return Err(last);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `GET path` over TLS to `addr` as `name`, trusting only `root`; the raw answer (status line,
/// headers and body).
#[allow(dead_code)] // not every test binary uses it
pub fn https_get(
    addr: SocketAddr,
    root: &rustls::pki_types::CertificateDer<'static>,
    name: rustls::pki_types::ServerName<'static>,
    path: &str,
) -> Result<String, String> {
    use std::io::{Read, Write};
    use std::sync::Arc;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).map_err(|e| e.to_string())?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let host = name.to_str().into_owned();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let tcp = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut out = String::new();
    let _ = tls.read_to_string(&mut out);
    if out.is_empty() {
        return Err("no answer".into());
    }
    Ok(out)
}

/// Registers `webhook` with the apiserver by URL as MutatingWebhookConfiguration `name` (hook
/// `hook`, `failurePolicy: Fail`), for pod creations in `namespace` only.
#[allow(dead_code)] // not every test binary registers one
pub async fn register_by_url(
    client: &kube::Client,
    name: &str,
    hook: &str,
    namespace: &str,
    webhook: &FileModeWebhook,
) {
    use base64::Engine;
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;

    let ca = base64::engine::general_purpose::STANDARD.encode(webhook.ca.as_bytes());
    let config: MutatingWebhookConfiguration = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "webhooks": [{"name": hook,
            "clientConfig": {"url": format!("https://{}/mutate", webhook.addr), "caBundle": ca},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                "resources": ["pods"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "failurePolicy": "Fail", "sideEffects": "None", "timeoutSeconds": 10,
            "admissionReviewVersions": ["v1"]}]
    }))
    .unwrap_or_else(|e| panic!("the webhook configuration does not decode: {e}"));
    let api: kube::Api<MutatingWebhookConfiguration> = kube::Api::all(client.clone());
    if let Err(e) = api.create(&Default::default(), &config).await {
        panic!("registering webhook configuration {name}: {e}");
    }
}
