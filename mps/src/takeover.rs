//! Putting the GPUs MPS can hold in EXCLUSIVE_PROCESS mode, and giving them back.
//!
//! The modes found are saved in `<root>/compute-modes.json` before anything changes. A daemon
//! killed without cleanup leaves its GPUs exclusive; its successor then reads the saved modes
//! instead of the exclusive ones it finds, so SIGTERM always restores what the node had before
//! Tessera.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::nvml::{ComputeModes, Mode, MpsGpu};

/// File name of the saved modes under the root.
pub const MODES_FILE: &str = "compute-modes.json";

/// A GPU's mode before Tessera took it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// GPU UUID.
    pub uuid: String,
    /// The mode found.
    pub mode: Mode,
}

/// The GPUs taken and what to restore.
#[derive(Debug)]
pub struct Taken {
    /// GPUs now in EXCLUSIVE_PROCESS mode behind MPS.
    pub gpus: Vec<MpsGpu>,
    saved: Vec<Saved>,
    file: PathBuf,
}

/// Takes every GPU MPS can hold. A GPU whose mode cannot be set is left out (logged): it is
/// then not behind MPS, and the device plugin offers it without isolation.
pub fn take(modes: &dyn ComputeModes, root: &Path) -> Result<Taken, crate::nvml::NvmlError> {
    let file = root.join(MODES_FILE);
    let earlier: Vec<Saved> = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut saved = Vec::new();
    let mut gpus = Vec::new();
    for gpu in modes.mps_gpus()? {
        let found = match earlier.iter().find(|s| s.uuid == gpu.uuid) {
            Some(s) => s.mode,
            None => modes.mode(&gpu)?,
        };
        saved.push(Saved {
            uuid: gpu.uuid.clone(),
            mode: found,
        });
        // Saved before the first change, so a crash mid-way still knows what to restore.
        write_saved(&file, &saved);
        match modes.set_mode(&gpu, Mode::ExclusiveProcess) {
            Ok(()) => gpus.push(gpu),
            Err(e) => {
                tracing::error!(gpu = %gpu.uuid, error = %e, "cannot put the GPU in EXCLUSIVE_PROCESS mode; it stays outside MPS")
            }
        }
    }
    Ok(Taken { gpus, saved, file })
}

fn write_saved(file: &Path, saved: &[Saved]) {
    let text = serde_json::to_string_pretty(saved).unwrap_or_default();
    if let Err(e) = std::fs::write(file, text) {
        tracing::warn!(file = %file.display(), error = %e, "cannot save the GPUs' compute modes");
    }
}

impl Taken {
    /// Restores every GPU's saved mode and forgets them.
    pub fn restore(self, modes: &dyn ComputeModes) {
        for s in &self.saved {
            let gpu = self.gpus.iter().find(|g| g.uuid == s.uuid);
            let Some(gpu) = gpu else { continue };
            match modes.set_mode(gpu, s.mode) {
                Ok(()) => tracing::info!(gpu = %s.uuid, mode = ?s.mode, "compute mode restored"),
                Err(e) => {
                    tracing::error!(gpu = %s.uuid, error = %e, "cannot restore the compute mode")
                }
            }
        }
        let _ = std::fs::remove_file(&self.file);
    }
}
