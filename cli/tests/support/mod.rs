//! Helpers shared by the CLI's end-to-end tests.

use std::path::Path;

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
