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
    let ca = serving_files(dir);
    let profiles =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/profiles/zookeeper.yaml");
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
    FileModeWebhook {
        addr,
        ca,
        log,
        _process: process,
    }
}
