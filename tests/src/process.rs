//! Tessera's own binaries run as processes by the e2e tests: start one with its log in a file,
//! and read its plain-HTTP `/readyz` and `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::e2e::KillOnDrop;

/// Runs `binary args…`, appending its stderr to `log`; killed when dropped.
pub fn spawn_logged<I, S>(binary: &Path, args: I, log: &Path) -> KillOnDrop
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = Command::new(binary)
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
    KillOnDrop(child)
}

/// `tessera extender` (the binary at `tessera`) serving plain HTTP on `addr` for the pods of
/// `scheduler`, watching the cluster in `kubeconfig`; its log is appended to `log`.
pub fn start_extender(
    tessera: &Path,
    addr: SocketAddr,
    scheduler: &str,
    kubeconfig: &Path,
    log: &Path,
) -> KillOnDrop {
    let listen = addr.to_string();
    let args: [&OsStr; 10] = [
        "--log-level".as_ref(),
        "info".as_ref(),
        "extender".as_ref(),
        "--listen".as_ref(),
        listen.as_ref(),
        "--scheduler-name".as_ref(),
        scheduler.as_ref(),
        "--kubeconfig".as_ref(),
        kubeconfig.as_os_str(),
        // One process, stopped and started by the test: it leads alone.
        "--leader-elect=false".as_ref(),
    ];
    spawn_logged(tessera, args, log)
}

/// `tessera extender` as the Deployment runs it: HTTPS on `addr` with the certificates it keeps
/// in Secret `secret` of `namespace` (`--self-managed-certs`), written to `dir`, and only
/// kube-scheduler's client certificate admitted to the verbs (`--client-ca`); log `dir/extender.log`.
pub fn start_extender_mtls(
    tessera: &Path,
    addr: SocketAddr,
    scheduler: &str,
    kubeconfig: &Path,
    (namespace, secret): (&str, &str),
    dir: &Path,
) -> KillOnDrop {
    let file = |name: &str| dir.join(name).display().to_string();
    let args = [
        "--log-level=info".to_string(),
        "extender".into(),
        format!("--listen={addr}"),
        format!("--scheduler-name={scheduler}"),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--leader-elect=false".into(),
        "--self-managed-certs".into(),
        format!("--cert-namespace={namespace}"),
        format!("--cert-secret={secret}"),
        "--cert-extra-names=127.0.0.1".into(),
        format!("--tls-cert={}", file("tls.crt")),
        format!("--tls-key={}", file("tls.key")),
        format!("--client-ca={}", file("ca.crt")),
    ];
    spawn_logged(tessera, args, &dir.join("extender.log"))
}

/// Runs `binary args…` to completion and returns its stdout; panics with its stderr on failure.
pub fn output_ok<I, S>(binary: &Path, args: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(binary).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}",
        binary.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The whole answer (status line, headers, body) to a plain `GET path`, or `None` when nothing
/// listens or the answer breaks off.
pub fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut tcp = TcpStream::connect(addr).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    tcp.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Waits (blocking, up to 30 s) until `addr` answers `/readyz` with 200.
pub fn wait_ready(addr: SocketAddr) {
    let start = Instant::now();
    while !get(addr, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{addr} never became ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of the unlabelled sample `name` on `addr`'s `/metrics`.
pub fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let text = get(addr, "/metrics")?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

/// A free port on 127.0.0.1 (bound, then released for the process under test to take).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}
