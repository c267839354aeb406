//! The one module of this crate that touches nvml-wrapper: list the GPUs MPS can hold and get
//! and set their compute mode, behind [`ComputeModes`] so the supervisor never sees NVML.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::ComputeMode;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A GPU's compute mode, as NVML names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Mode {
    /// Any number of processes (the driver's default).
    Default,
    /// One context from one thread (removed from current drivers).
    ExclusiveThread,
    /// No process may use the GPU.
    Prohibited,
    /// One process: with MPS, the MPS server, so no client can bypass it.
    ExclusiveProcess,
}

/// A GPU MPS could hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpsGpu {
    /// NVML index.
    pub index: u32,
    /// NVML UUID.
    pub uuid: String,
}

/// An NVML call failed.
#[derive(Debug, Error)]
#[error("NVML from {lib:?}: {what}: {reason}")]
pub struct NvmlError {
    /// Library used.
    pub lib: String,
    /// What was asked.
    pub what: String,
    /// What NVML said.
    pub reason: String,
}

/// What the supervisor needs from the GPU driver.
pub trait ComputeModes: Send + Sync + 'static {
    /// GPUs whose shares MPS can enforce: Volta (compute capability 7.0) or newer, MIG off.
    fn mps_gpus(&self) -> Result<Vec<MpsGpu>, NvmlError>;
    /// The GPU's compute mode.
    fn mode(&self, gpu: &MpsGpu) -> Result<Mode, NvmlError>;
    /// Sets the GPU's compute mode (needs root on the node).
    fn set_mode(&self, gpu: &MpsGpu, mode: Mode) -> Result<(), NvmlError>;
}

/// [`ComputeModes`] through nvml-wrapper.
pub struct NvmlModes {
    nvml: Nvml,
    lib: PathBuf,
}

impl NvmlModes {
    /// Loads NVML from `lib` and initialises it.
    pub fn load(lib: &Path) -> Result<Self, NvmlError> {
        let nvml = Nvml::builder()
            .lib_path(OsStr::new(lib.as_os_str()))
            .init()
            .map_err(|e| error(lib, "loading", &e))?;
        Ok(Self {
            nvml,
            lib: lib.to_path_buf(),
        })
    }

    fn err(&self, what: String, e: &nvml_wrapper::error::NvmlError) -> NvmlError {
        error(&self.lib, &what, e)
    }
}

fn error(lib: &Path, what: &str, e: &nvml_wrapper::error::NvmlError) -> NvmlError {
    NvmlError {
        lib: lib.display().to_string(),
        what: what.to_string(),
        reason: e.to_string(),
    }
}

impl ComputeModes for NvmlModes {
    fn mps_gpus(&self) -> Result<Vec<MpsGpu>, NvmlError> {
        let count = self
            .nvml
            .device_count()
            .map_err(|e| self.err("counting GPUs".into(), &e))?;
        let mut gpus = Vec::new();
        for index in 0..count {
            let what = || format!("GPU {index}");
            let device = self
                .nvml
                .device_by_index(index)
                .map_err(|e| self.err(what(), &e))?;
            let mig = device.mig_mode().map(|m| m.current == 1).unwrap_or(false);
            let volta = device
                .cuda_compute_capability()
                .map(|cc| cc.major >= 7)
                .unwrap_or(false);
            if volta && !mig {
                let uuid = device.uuid().map_err(|e| self.err(what(), &e))?;
                gpus.push(MpsGpu { index, uuid });
            }
        }
        Ok(gpus)
    }

    fn mode(&self, gpu: &MpsGpu) -> Result<Mode, NvmlError> {
        let what = || format!("compute mode of {}", gpu.uuid);
        let device = self
            .nvml
            .device_by_index(gpu.index)
            .map_err(|e| self.err(what(), &e))?;
        let mode = device.compute_mode().map_err(|e| self.err(what(), &e))?;
        Ok(match mode {
            ComputeMode::Default => Mode::Default,
            ComputeMode::ExclusiveThread => Mode::ExclusiveThread,
            ComputeMode::Prohibited => Mode::Prohibited,
            ComputeMode::ExclusiveProcess => Mode::ExclusiveProcess,
        })
    }

    fn set_mode(&self, gpu: &MpsGpu, mode: Mode) -> Result<(), NvmlError> {
        let what = || format!("setting {mode:?} on {}", gpu.uuid);
        let mut device = self
            .nvml
            .device_by_index(gpu.index)
            .map_err(|e| self.err(what(), &e))?;
        let mode = match mode {
            Mode::Default => ComputeMode::Default,
            Mode::ExclusiveThread => ComputeMode::ExclusiveThread,
            Mode::Prohibited => ComputeMode::Prohibited,
            Mode::ExclusiveProcess => ComputeMode::ExclusiveProcess,
        };
        device
            .set_compute_mode(mode)
            .map_err(|e| self.err(what(), &e))
    }
}
