//! The NVML stand-in library (`tests/nvml-standin`), built with cargo once per test binary, for
//! tests that load it through the device plugin's real FFI path.
#![allow(clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Builds the stand-in with cargo (once per test binary) and returns the library's path. Asking
/// cargo for the artifact works from a fresh clone and with any `CARGO_TARGET_DIR`.
pub fn library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = std::process::Command::new(cargo)
            .args([
                "build",
                "-p",
                "tessera-nvml-standin",
                "--message-format=json",
            ])
            .current_dir(&workspace)
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("cargo runs");
        assert!(out.status.success(), "building the NVML stand-in failed");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "nvidia_ml")
            .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
            .filter_map(|f| f.as_str().map(PathBuf::from))
            .find(|f| f.extension().is_some_and(|e| e == "so"))
            .expect("cargo reports the stand-in's .so")
    })
}

/// One simulated GPU line of the stand-in's config: `gpu UUID|NAME|MIB|MIG|CC|USED|UTIL`.
pub fn gpu_line(uuid: &str, name: &str, mib: u64) -> String {
    format!("gpu {uuid}|{name}|{mib}|0|8.0|1024|30\n")
}

/// Copies the stand-in into `dir` as `libnvidia-ml.so` with its config (`nvml-standin.conf`,
/// read from beside the library) and returns the library's path.
pub fn install(dir: &Path, config: &str) -> PathBuf {
    let lib = dir.join("libnvidia-ml.so");
    std::fs::copy(library(), &lib).expect("copy the NVML stand-in");
    std::fs::write(dir.join("nvml-standin.conf"), config).expect("write the stand-in's config");
    lib
}

/// File name of the stand-in `nvidia-cuda-mps-control` that [`install_mps_control`] writes.
pub const MPS_CONTROL: &str = "mps-control";

/// The stand-in control program, a shell script. `-f [-M]`: a foreground control daemon that
/// records its PID in the pipe directory and runs until a client asks it to quit
/// or until its parent is gone (`MPS_STANDIN_NO_M` set makes it refuse `-M`, like a driver without the multi-user server).
/// Otherwise a client: reads one command from stdin and answers `get_server_list` (and `quit`)
/// only while the daemon's PID is alive, exiting 1 like the real client when none answers.
/// Every start and command is appended to `$MPS_STANDIN_LOG` when it is set.
const MPS_CONTROL_SCRIPT: &str = r#"#!/bin/sh
log() { [ -n "$MPS_STANDIN_LOG" ] && echo "$*" >> "$MPS_STANDIN_LOG"; }
pipe="$CUDA_MPS_PIPE_DIRECTORY"
case "$1" in
-f|-d)
  log "daemon $* pipe=$pipe log=$CUDA_MPS_LOG_DIRECTORY"
  if [ "$2" = "-M" ] && [ -n "$MPS_STANDIN_NO_M" ]; then echo "unknown option -M" >&2; exit 1; fi
  rm -f "$pipe/quit"; echo $$ > "$pipe/standin.pid"
  # Ends with its parent too (a supervisor killed with SIGKILL leaves no stray daemon).
  while [ ! -e "$pipe/quit" ] && kill -0 "$PPID" 2>/dev/null; do sleep 0.05; done
  log "daemon quit"; exit 0 ;;
esac
read -r cmd
log "client $cmd"
pid=$(cat "$pipe/standin.pid" 2>/dev/null)
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then echo "Cannot find MPS control daemon process"; exit 1; fi
case "$cmd" in
get_server_list) exit 0 ;;
quit) touch "$pipe/quit"; exit 0 ;;
*) exit 1 ;;
esac
"#;

/// Writes the stand-in `nvidia-cuda-mps-control` into `dir` and returns its path.
pub fn install_mps_control(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(MPS_CONTROL);
    std::fs::write(&path, MPS_CONTROL_SCRIPT).expect("write the MPS control stand-in");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("make the MPS control stand-in executable");
    path
}
