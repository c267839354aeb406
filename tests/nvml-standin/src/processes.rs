//! Per-process figures: `nvmlDeviceGetComputeRunningProcesses_v3`,
//! `nvmlDeviceGetMPSComputeRunningProcesses_v3` and `nvmlDeviceGetProcessUtilization`, answered
//! from `nvml-standin.procs` beside the library, read on every call so a test can start and end
//! processes. One process a line: `INDEX PID USED_BYTES SM% [LISTS]`, where `SM%` is `-` for a
//! process without a utilisation sample and `LISTS` says which calls report it: `c` (compute,
//! the default), `m` (MPS) or `cm`. A GPU index listed in `nvml-standin.nosm` answers the
//! utilisation call NOT_SUPPORTED, like a board that does not sample per process.

use std::ffi::{c_uint, c_ulonglong, c_void};

use super::{
    ERROR_INSUFFICIENT_SIZE, ERROR_INVALID_ARGUMENT, ERROR_NOT_FOUND, ERROR_NOT_SUPPORTED, Ret,
    SUCCESS,
};

/// NVML_VALUE_NOT_AVAILABLE as a process' `usedGpuMemory`.
const NOT_AVAILABLE: c_ulonglong = c_ulonglong::MAX;

/// `nvmlProcessInfo_t` (= `nvmlProcessInfo_v2_t`): what the `_v3` process calls fill.
#[repr(C)]
pub struct ProcessInfo {
    pid: c_uint,
    used_gpu_memory: c_ulonglong,
    gpu_instance_id: c_uint,
    compute_instance_id: c_uint,
}

/// `nvmlProcessUtilizationSample_t`.
#[repr(C)]
pub struct UtilizationSample {
    pid: c_uint,
    time_stamp: c_ulonglong,
    sm_util: c_uint,
    mem_util: c_uint,
    enc_util: c_uint,
    dec_util: c_uint,
}

/// One line of `nvml-standin.procs`.
struct Proc {
    index: usize,
    pid: u32,
    used: Option<u64>,
    sm: Option<u32>,
    compute: bool,
    mps: bool,
}

fn parse(line: &str) -> Option<Proc> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let lists = f.get(4).copied().unwrap_or("c");
    Some(Proc {
        index: f.first()?.parse().ok()?,
        pid: f.get(1)?.parse().ok()?,
        used: f.get(2)?.parse().ok(),
        sm: f.get(3)?.parse().ok(),
        compute: lists.contains('c'),
        mps: lists.contains('m'),
    })
}

/// The processes of the GPU and whether it samples utilisation, or the GPU's error (lost,
/// invalid handle).
fn procs(device: *mut c_void) -> Result<(Vec<Proc>, bool), Ret> {
    super::with_gpu(device, |_| ())?;
    super::with_state(|s| {
        let index = super::device_index(s, device)?;
        let text = std::fs::read_to_string(s.dir.join("nvml-standin.procs")).unwrap_or_default();
        let list = text
            .lines()
            .filter_map(parse)
            .filter(|p| p.index == index)
            .collect();
        let nosm = std::fs::read_to_string(s.dir.join("nvml-standin.nosm")).unwrap_or_default();
        let sampled = !nosm.lines().any(|l| l.trim().parse() == Ok(index));
        Ok((list, sampled))
    })
}

/// Fills `buf` (room for `*count` entries) or, when it is null or too small, says how many
/// entries there are with NVML_ERROR_INSUFFICIENT_SIZE; no entry at all is SUCCESS with 0.
fn fill<T>(entries: Vec<T>, count: *mut c_uint, buf: *mut T) -> Ret {
    if count.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    // SAFETY: non-null pointer the caller owns.
    let room = unsafe { *count } as usize;
    let n = entries.len();
    // SAFETY: as above.
    unsafe { *count = n as c_uint };
    if n == 0 {
        return SUCCESS;
    }
    if buf.is_null() || room < n {
        return ERROR_INSUFFICIENT_SIZE;
    }
    for (i, e) in entries.into_iter().enumerate() {
        // SAFETY: the caller gave room for `room` >= `n` entries.
        unsafe { buf.add(i).write(e) };
    }
    SUCCESS
}

fn process_list(
    device: *mut c_void,
    count: *mut c_uint,
    infos: *mut ProcessInfo,
    mps: bool,
) -> Ret {
    let list = match procs(device) {
        Ok((list, _)) => list,
        Err(code) => return code,
    };
    let entries = list
        .into_iter()
        .filter(|p| if mps { p.mps } else { p.compute })
        .map(|p| ProcessInfo {
            pid: p.pid,
            used_gpu_memory: p.used.unwrap_or(NOT_AVAILABLE),
            // 0xFFFFFFFF: not on a MIG instance.
            gpu_instance_id: c_uint::MAX,
            compute_instance_id: c_uint::MAX,
        })
        .collect();
    fill(entries, count, infos)
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetComputeRunningProcesses_v3(
    device: *mut c_void,
    count: *mut c_uint,
    infos: *mut ProcessInfo,
) -> Ret {
    process_list(device, count, infos, false)
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetMPSComputeRunningProcesses_v3(
    device: *mut c_void,
    count: *mut c_uint,
    infos: *mut ProcessInfo,
) -> Ret {
    process_list(device, count, infos, true)
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetProcessUtilization(
    device: *mut c_void,
    samples: *mut UtilizationSample,
    count: *mut c_uint,
    _last_seen: c_ulonglong,
) -> Ret {
    let (list, sampled) = match procs(device) {
        Ok(found) => found,
        Err(code) => return code,
    };
    if !sampled {
        return ERROR_NOT_SUPPORTED;
    }
    let entries: Vec<UtilizationSample> = list
        .into_iter()
        .filter_map(|p| {
            Some(UtilizationSample {
                pid: p.pid,
                time_stamp: 1,
                sm_util: p.sm?,
                mem_util: 0,
                enc_util: 0,
                dec_util: 0,
            })
        })
        .collect();
    // NVML answers NOT_FOUND, not an empty list, when no process was sampled.
    if entries.is_empty() {
        return ERROR_NOT_FOUND;
    }
    fill(entries, count, samples)
}
