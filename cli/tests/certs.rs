//! `tessera certs` as an operator runs it: the serving certificate verifies against the printed
//! caBundle for the webhook Service's DNS name, the key is private, and the Secret form is a
//! `kubernetes.io/tls` Secret.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

fn tessera(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn files_verify_for_the_service_name_against_the_printed_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(&[
        "certs",
        "--service",
        "hook",
        "--namespace",
        "infra",
        "--out-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ca_pem = std::fs::read(dir.path().join("ca.crt")).unwrap();
    let printed = String::from_utf8(out.stdout).unwrap();
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(printed.trim())
            .unwrap(),
        ca_pem
    );

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(&ca_pem).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap();
    let leaf = CertificateDer::from_pem_slice(&std::fs::read(dir.path().join("tls.crt")).unwrap())
        .unwrap();
    for name in ["hook.infra.svc", "hook.infra.svc.cluster.local"] {
        verifier
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from(name).unwrap(),
                &[],
                UnixTime::now(),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(
        verifier
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from("other.infra.svc").unwrap(),
                &[],
                UnixTime::now()
            )
            .is_err()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("tls.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by others: {mode:o}");
    }
}

#[test]
fn the_secret_form_is_a_tls_secret_and_without_a_destination_it_says_what_is_missing() {
    let out = tessera(&["certs", "--secret", "tessera-webhook-tls"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&out.stdout).unwrap();
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(secret["metadata"]["namespace"], "tessera-system");
    for key in ["ca.crt", "tls.crt", "tls.key"] {
        assert!(
            secret["data"][key].as_str().is_some_and(|v| !v.is_empty()),
            "{key}"
        );
    }
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("caBundle: "));

    let none = tessera(&["certs"]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("--out-dir DIR or --secret NAME"));
}
