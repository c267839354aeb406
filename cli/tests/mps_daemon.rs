//! `tessera mps-daemon` as shipped: the real binary, NVML answered by the stand-in library
//! (compute modes kept in files the test reads), and the stand-in `nvidia-cuda-mps-control`
//! (`tessera_tests::standin::install_mps_control`) that logs how it was run and the commands
//! it read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);
const VOLTA: &str = "GPU-11111111-1111-1111-1111-111111111111";
const PASCAL: &str = "GPU-22222222-2222-2222-2222-222222222222";

struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let lib = tessera_tests::standin::library();
        std::fs::copy(lib, dir.path().join("libnvidia-ml.so")).unwrap();
        // A Volta-class GPU MPS can hold, and a Pascal one (compute capability 6.0) it cannot.
        let conf =
            format!("gpu {VOLTA}|NVIDIA A100|40960|0|8.0\ngpu {PASCAL}|Tesla P100|16384|0|6.0\n");
        std::fs::write(dir.path().join("nvml-standin.conf"), conf).unwrap();
        tessera_tests::standin::install_mps_control(dir.path());
        Self { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("mps")
    }

    fn mode(&self, index: u32) -> String {
        let file = self.dir.path().join(format!("nvml-standin.mode.{index}"));
        std::fs::read_to_string(file).map_or("0".into(), |t| t.trim().to_string())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("control.log")).unwrap_or_default()
    }

    fn status(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.root().join("status.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn start(&self, port: u16, extra_env: &[(&str, &str)]) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.arg("mps-daemon")
            .arg("--mps-root")
            .arg(self.root())
            .arg("--mps-control")
            .arg(self.dir.path().join(tessera_tests::standin::MPS_CONTROL))
            .arg("--nvml-lib")
            .arg(self.dir.path().join("libnvidia-ml.so"))
            .args(["--health-ms", "100", "--stop-seconds", "5"])
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("MPS_STANDIN_LOG", self.dir.path().join("control.log"))
            .stderr(std::process::Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    }
}

fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Status code and whole response of `GET path`.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text))
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn control_pid(root: &Path) -> Option<u32> {
    std::fs::read_to_string(root.join("pipe/standin.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[test]
fn takes_the_gpus_publishes_readiness_restarts_the_daemon_and_gives_back_on_sigterm() {
    let node = Node::new();
    let port = free_port();
    let daemon = node.start(port, &[]);
    let status = until("the status file", || node.status());
    assert_eq!(
        status["gpus"],
        serde_json::json!([VOLTA]),
        "only GPUs MPS can hold"
    );
    assert_eq!(status["multiUser"], true);
    assert_eq!(
        node.mode(0),
        "3",
        "EXCLUSIVE_PROCESS: no client can bypass MPS"
    );
    assert_eq!(node.mode(1), "0", "a GPU MPS cannot hold is left as it was");
    until("/readyz 200", || {
        (get(port, "/readyz")?.0 == 200).then_some(())
    });
    let root = node.root().display().to_string();
    let log = node.log();
    assert!(
        log.contains(&format!("daemon -f -M pipe={root}/pipe log={root}/log")),
        "{log}"
    );
    assert!(log.contains("client get_server_list"), "{log}");
    let (_, metrics) = until("metrics", || get(port, "/metrics"));
    assert!(metrics.contains("tessera_mps_ready 1"), "{metrics}");
    assert!(metrics.contains("tessera_mps_gpus 1"), "{metrics}");
    // No Accept header: the Prometheus text format, clean for promtool.
    let (head, body) = metrics.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    tessera_tests::promtool::assert_clean(body);

    // The control daemon dies: isolation is gone at once, then back after a restart.
    let first = until("the control daemon's pid", || control_pid(&node.root()));
    signal(first, "-KILL");
    until("the status withdrawn", || {
        node.status().is_none().then_some(())
    });
    until("a restarted control daemon", || {
        control_pid(&node.root()).filter(|p| *p != first)
    });
    until("the status back", || node.status());

    signal(daemon.id(), "-TERM");
    let out = daemon.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    // The log says what happened, in plain text when it does not go to a terminal.
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("restarting the MPS control daemon"), "{log}");
    assert!(!log.contains('\x1b'), "colour codes in a log file: {log}");
    assert!(node.status().is_none(), "no status after shutdown");
    assert!(node.log().contains("client quit"), "{}", node.log());
    assert!(node.log().contains("daemon quit"), "{}", node.log());
    assert_eq!(node.mode(0), "0", "the mode found is restored");
    assert!(!node.root().join("compute-modes.json").exists());
}

#[test]
fn a_driver_without_the_multi_user_server_runs_single_user_and_says_so() {
    let node = Node::new();
    let mut daemon = node.start(free_port(), &[("MPS_STANDIN_NO_M", "1")]);
    let status = until("the status file", || node.status());
    assert_eq!(status["multiUser"], false);
    let log = node.log();
    assert!(log.contains("daemon -f -M"), "{log}");
    assert!(log.contains("daemon -f pipe="), "{log}");
    signal(daemon.id(), "-TERM");
    assert!(daemon.wait().unwrap().success());
}

#[test]
fn bad_flags_are_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["mps-daemon", "--mps-root", "relative/dir"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--mps-root \"relative/dir\" must be an absolute path"),
        "{stderr}"
    );
}
