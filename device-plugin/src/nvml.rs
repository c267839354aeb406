//! The one module that touches nvml-wrapper (STYLE.md 6): discovery, usage, per-process figures
//! and XID events, returned as core types behind the [`Gpus`] trait so the rest of the crate never sees NVML.
//!
//! NVML calls block, so the XID watch runs on its own OS thread and hands events to async code
//! through a channel; it stops when the receiver is dropped.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nvml_wrapper::Nvml;
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::ProcessInfo;
use tessera_core::inventory::GpuInfo;
use tessera_core::plugin::accounting::{GpuProcess, GpuProcesses};
use tokio::sync::mpsc;

use crate::error::NvmlFailure;

/// NVML's default library name, found through the dynamic loader's search path.
pub const DEFAULT_LIB: &str = "libnvidia-ml.so.1";

/// How long one blocking wait for an XID lasts before the thread checks whether anyone still
/// listens (milliseconds).
const XID_WAIT_MS: u32 = 200;

/// How far back per-process utilisation samples are asked for (microseconds): long enough to
/// hold NVML's latest sample of every busy process, short enough that a process idle for a
/// while reads as idle rather than as its last burst.
const SAMPLE_WINDOW_US: u64 = 10_000_000;

/// An XID event from NVML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XidEvent {
    /// GPU the event is about.
    pub uuid: String,
    /// The XID; `None` when NVML reports it as unknown (999).
    pub xid: Option<u64>,
}

/// Live figures for one GPU, read at metrics scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuUsage {
    /// GPU UUID.
    pub uuid: String,
    /// Memory in use, bytes.
    pub used_bytes: u64,
    /// Total memory, bytes.
    pub total_bytes: u64,
    /// Percent of time a kernel ran over NVML's last sample period.
    pub util_percent: u32,
}

/// What the plugin needs from the GPU driver.
pub trait Gpus: Send + Sync + 'static {
    /// Every GPU in index order, all healthy (health is the XID tracker's business).
    fn discover(&self) -> Result<Vec<GpuInfo>, NvmlFailure>;
    /// Current memory use and utilisation; a GPU whose query fails is left out.
    fn usage(&self) -> Vec<GpuUsage>;
    /// The compute processes on every GPU with their memory and SM utilisation; a GPU whose
    /// process list fails is left out.
    fn processes(&self) -> Vec<GpuProcesses>;
    /// Starts watching critical XID events on every GPU, sending each to `tx`.
    fn watch_xids(&self, tx: mpsc::Sender<XidEvent>) -> Result<(), NvmlFailure>;
}

/// [`Gpus`] through nvml-wrapper.
pub struct NvmlGpus {
    nvml: Arc<Nvml>,
    lib: PathBuf,
}

impl NvmlGpus {
    /// Loads NVML from `lib` (a path or a name the loader searches) and initialises it.
    pub fn load(lib: &Path) -> Result<Self, NvmlFailure> {
        let nvml = Nvml::builder()
            .lib_path(OsStr::new(lib.as_os_str()))
            .init()
            .map_err(|e| failure(lib, e))?;
        Ok(Self {
            nvml: Arc::new(nvml),
            lib: lib.to_path_buf(),
        })
    }

    fn gpu(&self, index: u32) -> Result<GpuInfo, NvmlError> {
        let device = self.nvml.device_by_index(index)?;
        // MIG and compute capability are not reported by every GPU; absent means "no".
        let mig = device.mig_mode().map(|m| m.current == 1).unwrap_or(false);
        // MPS limits (pinned memory, active thread percentage) need Volta (7.0) or newer.
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
            // Live isolation is the MPS daemon's to report (`state::Shared::inventory`).
            isolation: tessera_core::inventory::Isolation::None,
        })
    }
}

fn failure(lib: &Path, error: NvmlError) -> NvmlFailure {
    match error {
        NvmlError::LibloadingError(e) => NvmlFailure::Load {
            lib: lib.display().to_string(),
            reason: e.to_string(),
        },
        NvmlError::FailedToLoadSymbol(s) => NvmlFailure::Load {
            lib: lib.display().to_string(),
            reason: format!("missing symbol: {s}"),
        },
        NvmlError::DriverNotLoaded | NvmlError::LibraryNotFound => NvmlFailure::Load {
            lib: lib.display().to_string(),
            reason: error.to_string(),
        },
        other => NvmlFailure::Query {
            lib: lib.display().to_string(),
            reason: other.to_string(),
        },
    }
}

impl Gpus for NvmlGpus {
    fn discover(&self) -> Result<Vec<GpuInfo>, NvmlFailure> {
        let count = self
            .nvml
            .device_count()
            .map_err(|e| failure(&self.lib, e))?;
        if count == 0 {
            return Err(NvmlFailure::NoGpu {
                lib: self.lib.display().to_string(),
            });
        }
        (0..count)
            .map(|i| self.gpu(i).map_err(|e| failure(&self.lib, e)))
            .collect()
    }

    fn usage(&self) -> Vec<GpuUsage> {
        let count = self.nvml.device_count().unwrap_or(0);
        (0..count)
            .filter_map(|i| {
                let d = self.nvml.device_by_index(i).ok()?;
                let mem = d.memory_info().ok()?;
                Some(GpuUsage {
                    uuid: d.uuid().ok()?,
                    used_bytes: mem.used,
                    total_bytes: mem.total,
                    util_percent: d.utilization_rates().map(|u| u.gpu).unwrap_or(0),
                })
            })
            .collect()
    }

    fn processes(&self) -> Vec<GpuProcesses> {
        let count = self.nvml.device_count().unwrap_or(0);
        let since = jiff::Timestamp::now()
            .as_microsecond()
            .try_into()
            .map_or(0, |now: u64| now.saturating_sub(SAMPLE_WINDOW_US));
        (0..count)
            .filter_map(|i| {
                let d = self.nvml.device_by_index(i).ok()?;
                Some(GpuProcesses {
                    uuid: d.uuid().ok()?,
                    processes: merged(
                        d.running_compute_processes().ok()?,
                        // Older drivers and GPUs without MPS have no such list.
                        d.mps_running_compute_processes().unwrap_or_default(),
                    ),
                    sm_percent: match d.process_utilization_stats(since) {
                        Ok(samples) => Some(latest(samples)),
                        // NVML's answer when no process ran a kernel in the window.
                        Err(NvmlError::NotFound) => Some(BTreeMap::new()),
                        Err(_) => None,
                    },
                })
            })
            .collect()
    }

    fn watch_xids(&self, tx: mpsc::Sender<XidEvent>) -> Result<(), NvmlFailure> {
        let nvml = Arc::clone(&self.nvml);
        let lib = self.lib.clone();
        // Register before returning so the caller knows the watch is live.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("nvml-xid".into())
            .spawn(move || xid_loop(&nvml, &lib, &tx, &ready_tx))
            .map_err(|e| NvmlFailure::Query {
                lib: self.lib.display().to_string(),
                reason: format!("cannot start the XID thread: {e}"),
            })?;
        ready_rx.recv().unwrap_or_else(|_| {
            Err(NvmlFailure::Query {
                lib: self.lib.display().to_string(),
                reason: "XID thread ended before registering".into(),
            })
        })
    }
}

/// The compute and MPS process lists as one, each PID once. Which list shows an MPS client
/// differs between drivers, so both are read; a PID in both keeps the figure it has.
fn merged(compute: Vec<ProcessInfo>, mps: Vec<ProcessInfo>) -> Vec<GpuProcess> {
    let mut by_pid: BTreeMap<u32, Option<u64>> = BTreeMap::new();
    for p in compute.into_iter().chain(mps) {
        let used = match p.used_gpu_memory {
            UsedGpuMemory::Used(bytes) => Some(bytes),
            UsedGpuMemory::Unavailable => None,
        };
        let entry = by_pid.entry(p.pid).or_default();
        *entry = (*entry).max(used);
    }
    by_pid
        .into_iter()
        .map(|(pid, used_bytes)| GpuProcess { pid, used_bytes })
        .collect()
}

/// SM percent per PID from its newest sample.
fn latest(
    samples: Vec<nvml_wrapper::struct_wrappers::device::ProcessUtilizationSample>,
) -> BTreeMap<u32, u32> {
    let mut newest: BTreeMap<u32, (u64, u32)> = BTreeMap::new();
    for s in samples {
        let e = newest.entry(s.pid).or_insert((s.timestamp, s.sm_util));
        if s.timestamp >= e.0 {
            *e = (s.timestamp, s.sm_util);
        }
    }
    newest.into_iter().map(|(pid, (_, sm))| (pid, sm)).collect()
}

fn xid_loop(
    nvml: &Nvml,
    lib: &Path,
    tx: &mpsc::Sender<XidEvent>,
    ready: &std::sync::mpsc::Sender<Result<(), NvmlFailure>>,
) {
    let set = match register_all(nvml) {
        Ok(set) => {
            let _ = ready.send(Ok(()));
            set
        }
        Err(e) => {
            let _ = ready.send(Err(failure(lib, e)));
            return;
        }
    };
    while !tx.is_closed() {
        let event = match set.wait(XID_WAIT_MS) {
            Ok(event) => event,
            Err(NvmlError::Timeout) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "NVML event wait failed");
                std::thread::sleep(std::time::Duration::from_millis(u64::from(XID_WAIT_MS)));
                continue;
            }
        };
        let Ok(uuid) = event.device.uuid() else {
            continue;
        };
        let xid = match event.event_data {
            Some(XidError::Value(v)) => Some(v),
            _ => None,
        };
        if tx.blocking_send(XidEvent { uuid, xid }).is_err() {
            break;
        }
    }
}

/// [`Gpus`] when NVML could not be loaded: every call reports the load failure, so the plugin
/// runs in its no-GPU mode (crate docs) with the one clear message.
pub struct NoNvml(pub NvmlFailure);

impl Gpus for NoNvml {
    fn discover(&self) -> Result<Vec<GpuInfo>, NvmlFailure> {
        Err(self.0.clone())
    }

    fn usage(&self) -> Vec<GpuUsage> {
        Vec::new()
    }

    fn processes(&self) -> Vec<GpuProcesses> {
        Vec::new()
    }

    fn watch_xids(&self, _: mpsc::Sender<XidEvent>) -> Result<(), NvmlFailure> {
        Err(self.0.clone())
    }
}

/// An event set with critical XID events registered on every GPU that supports them. A GPU that
/// refuses (NotSupported on some boards and vGPUs) is logged and left out; nvml-wrapper consumes
/// the set on a failed registration, so the set is rebuilt with the GPUs that accepted.
fn register_all(nvml: &Nvml) -> Result<nvml_wrapper::EventSet<'_>, NvmlError> {
    let mut accepted: Vec<u32> = Vec::new();
    let mut set = nvml.create_event_set()?;
    for i in 0..nvml.device_count()? {
        match nvml
            .device_by_index(i)?
            .register_events(EventTypes::CRITICAL_XID_ERROR, set)
        {
            Ok(s) => {
                set = s;
                accepted.push(i);
            }
            Err(e) => {
                tracing::warn!(gpu_index = i, error = %e.error, "GPU does not report XID events; its health will not change");
                set = nvml.create_event_set()?;
                for &j in &accepted {
                    set = nvml
                        .device_by_index(j)?
                        .register_events(EventTypes::CRITICAL_XID_ERROR, set)
                        .map_err(|e| e.error)?;
                }
            }
        }
    }
    Ok(set)
}
