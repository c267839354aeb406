//! `nvidia-cuda-mps-control`, run two ways: in the foreground (`-f`, so this process supervises
//! it directly and sees it exit) as the control daemon, and as a client that writes one command
//! on stdin (`get_server_list` for health, `quit` on shutdown). Both get the same
//! `CUDA_MPS_PIPE_DIRECTORY` and `CUDA_MPS_LOG_DIRECTORY`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tessera_core::plugin::mps::{CUDA_MPS_PIPE_DIRECTORY, LOG_DIR, PIPE_DIR};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

/// Env naming the log directory of the control daemon and its servers.
pub const CUDA_MPS_LOG_DIRECTORY: &str = "CUDA_MPS_LOG_DIRECTORY";

/// How to run the control program under one root.
#[derive(Debug, Clone)]
pub struct Control {
    program: PathBuf,
    pipe: PathBuf,
    log: PathBuf,
}

impl Control {
    /// The control program `program` with its directories under `root`.
    pub fn new(program: &Path, root: &Path) -> Self {
        Self {
            program: program.to_path_buf(),
            pipe: root.join(PIPE_DIR),
            log: root.join(LOG_DIR),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.env(CUDA_MPS_PIPE_DIRECTORY, &self.pipe)
            .env(CUDA_MPS_LOG_DIRECTORY, &self.log)
            .stdin(Stdio::null());
        cmd
    }

    /// Starts the control daemon in the foreground, with the multi-user server if asked.
    /// It is killed if this process drops it (never left running unsupervised).
    pub fn spawn_daemon(&self, multi_user: bool) -> std::io::Result<Child> {
        let mut cmd = self.command();
        cmd.arg("-f");
        if multi_user {
            cmd.arg("-M");
        }
        cmd.kill_on_drop(true).spawn()
    }

    /// Sends `command` to the running control daemon; returns its output, or why it failed
    /// (the client exits non-zero when no daemon answers).
    pub async fn ask(&self, command: &str, timeout: Duration) -> Result<String, String> {
        let mut child = self
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            let line = format!("{command}\n");
            stdin
                .write_all(line.as_bytes())
                .await
                .map_err(|e| format!("writing {command:?}: {e}"))?;
        }
        let output = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .map_err(|_| format!("{command:?} got no answer in {timeout:?}"))?
            .map_err(|e| format!("{command:?}: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            Ok(stdout)
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            Err(format!(
                "{command:?} failed ({}): {}",
                output.status,
                format!("{stdout} {stderr}").trim()
            ))
        }
    }
}
