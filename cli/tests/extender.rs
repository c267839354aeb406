//! `tessera extender` as an operator runs it: the real binary over HTTPS with a certificate made
//! here, not ready while it cannot reach the apiserver, and gone promptly on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use tessera_tests::e2e::KillOnDrop;

mod support;

/// A free port on 127.0.0.1 (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A kubeconfig for an apiserver that is not there: the client starts, the watches keep failing.
fn dead_kubeconfig(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    let port = free_port();
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    path
}

/// `GET path` over TLS to the extender on `port`, trusting only `cert`.
fn https_get(port: u16, cert: &CertificateDer<'static>, path: &str) -> Option<String> {
    let name = ServerName::try_from("localhost").ok()?;
    support::https_get(([127, 0, 0, 1], port).into(), cert, name, path).ok()
}

#[test]
fn serves_https_is_not_ready_without_the_apiserver_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["extender", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--tls-cert")
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("tls.key"))
        .arg("--kubeconfig")
        .arg(dead_kubeconfig(dir.path()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = KillOnDrop(child);
    let der = cert.der().clone();
    let started = Instant::now();
    let health = loop {
        if let Some(answer) = https_get(port, &der, "/healthz") {
            break answer;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never served HTTPS"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let ready = https_get(port, &der, "/readyz").unwrap();
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    assert!(ready.ends_with("caches not synced"), "{ready}");

    let pid = running.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
