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
