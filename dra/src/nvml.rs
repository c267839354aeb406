//! The one module that touches nvml-wrapper: the node's GPUs and driver version at start, and
//! which GPUs NVML still answers for, as core types behind the [`Gpus`] trait.
//!
//! The device plugin has its own NVML module; the two I/O crates never depend on each other,
//! and this one needs only discovery and a liveness query. Both read a GPU the same way
//! (MPS capability: compute capability 7.0 or newer with MIG off).

use std::ffi::OsStr;
use std::path::Path;

use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;
use tessera_core::inventory::{GpuInfo, Isolation};

use crate::error::NvmlFailure;

/// NVML's default library name, found through the dynamic loader's search path.
pub const DEFAULT_LIB: &str = "libnvidia-ml.so.1";

/// What discovery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// Every GPU in index order, all healthy.
    pub gpus: Vec<GpuInfo>,
    /// The NVIDIA driver version, when NVML tells it.
    pub driver_version: Option<String>,
}

/// What the plugin needs from the GPU driver.
pub trait Gpus: Send + Sync + 'static {
    /// The node's GPUs (none is not an error: the slice is then empty).
    fn discover(&self) -> Result<Discovered, NvmlFailure>;
    /// UUIDs of the GPUs NVML answers a memory query for now.
    fn answering(&self) -> Vec<String>;
}

/// [`Gpus`] through nvml-wrapper.
pub struct NvmlGpus {
    nvml: Nvml,
    lib: String,
}

impl NvmlGpus {
    /// Loads NVML from `lib` (a path or a name the loader searches) and initialises it.
    pub fn load(lib: &Path) -> Result<Self, NvmlFailure> {
        let name = lib.display().to_string();
        let nvml = Nvml::builder()
            .lib_path(OsStr::new(lib.as_os_str()))
            .init()
            .map_err(|e| NvmlFailure::Load {
                lib: name.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self { nvml, lib: name })
    }

    fn gpu(&self, index: u32) -> Result<GpuInfo, NvmlError> {
        let device = self.nvml.device_by_index(index)?;
        // Not every GPU reports MIG mode or compute capability; absent means "no".
        let mig = device.mig_mode().map(|m| m.current == 1).unwrap_or(false);
        let mps = device
            .cuda_compute_capability()
            .map(|cc| cc.major >= 7)
            .unwrap_or(false);
        Ok(GpuInfo {
            index,
            uuid: device.uuid()?,
            model: device.name()?,
            memory_mib: device.memory_info()?.total / (1024 * 1024),
            healthy: true,
            mig,
            mps: mps && !mig,
            // Live isolation is the MPS daemon's to report.
            isolation: Isolation::None,
        })
    }

    fn query(&self, e: NvmlError) -> NvmlFailure {
        NvmlFailure::Query {
            lib: self.lib.clone(),
            reason: e.to_string(),
        }
    }
}

impl Gpus for NvmlGpus {
    fn discover(&self) -> Result<Discovered, NvmlFailure> {
        let count = self.nvml.device_count().map_err(|e| self.query(e))?;
        let gpus = (0..count)
            .map(|i| self.gpu(i).map_err(|e| self.query(e)))
            .collect::<Result<_, _>>()?;
        Ok(Discovered {
            gpus,
            driver_version: self.nvml.sys_driver_version().ok(),
        })
    }

    fn answering(&self) -> Vec<String> {
        let count = self.nvml.device_count().unwrap_or(0);
        (0..count)
            .filter_map(|i| {
                let d = self.nvml.device_by_index(i).ok()?;
                d.memory_info().ok()?;
                d.uuid().ok()
            })
            .collect()
    }
}
