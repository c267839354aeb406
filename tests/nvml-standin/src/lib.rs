//! A stand-in `libnvidia-ml.so` for tests: the NVML C functions Tessera's device plugin calls
//! through nvml-wrapper, answering from a config file instead of a GPU driver. The device plugin
//! loads it through `--nvml-lib`, so the real FFI path (libloading, symbol lookup, C structs) runs.
//!
//! Built only by the tests (`cargo build -p tessera-nvml-standin`); production builds never build
//! it. Configuration lives next to the library file, so a test that copies the library into its
//! own temporary directory gets its own instance (the dynamic loader keys objects by file) and its
//! own GPUs:
//!
//! - `nvml-standin.conf`: one line per GPU,
//!   `gpu UUID|NAME|MEMORY_MIB|MIG(0/1)|CC|USED_MIB|UTIL%|EVENTS(0/1)` (the last five optional:
//!   `0`, `8.0`, `0`, `0`, `1`; `EVENTS=0` makes XID registration fail with NOT_SUPPORTED). `#` starts a comment. No file: `nvmlInit`
//!   fails with NVML_ERROR_DRIVER_NOT_LOADED, like a node without the driver.
//! - `nvml-standin.lost`: GPU indices, one a line, whose queries fail with NVML_ERROR_GPU_IS_LOST.
//! - `nvml-standin.xid`: appended by the test, one event a line, `INDEX XID`. Each event set
//!   reports every line once, to the devices registered for critical XID events.
//! - `nvml-standin.mode.INDEX`: the GPU's compute mode as NVML numbers it (0 default, 2
//!   prohibited, 3 exclusive process); absent means 0. `nvmlDeviceSetComputeMode` writes it, so
//!   a test (or another process) sees what the code under test set. `nvml-standin.noroot`
//!   makes the setter fail with NVML_ERROR_NO_PERMISSION, like a caller that is not root.
//! - `nvml-standin.driver`: the driver version `nvmlSystemGetDriverVersion` reports; absent
//!   means [`DRIVER_VERSION`].
//! - `nvml-standin.procs` and `nvml-standin.nosm`: GPU processes with their memory and SM
//!   utilisation (format in the `processes` module).
//!
//! The struct layouts and return codes follow NVML's `nvml.h` (as exposed by nvml-wrapper-sys).

use std::ffi::{CStr, c_char, c_int, c_uint, c_ulonglong, c_void};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod config;
mod processes;

use config::Gpu;

type Ret = c_uint;
const SUCCESS: Ret = 0;
const ERROR_UNINITIALIZED: Ret = 1;
const ERROR_INVALID_ARGUMENT: Ret = 2;
const ERROR_NOT_SUPPORTED: Ret = 3;
const ERROR_NO_PERMISSION: Ret = 4;
const ERROR_NOT_FOUND: Ret = 6;
const ERROR_INSUFFICIENT_SIZE: Ret = 7;
const ERROR_DRIVER_NOT_LOADED: Ret = 9;
const ERROR_TIMEOUT: Ret = 10;
const ERROR_GPU_IS_LOST: Ret = 15;
const ERROR_UNKNOWN: Ret = 999;

/// The driver version reported when `nvml-standin.driver` is absent.
pub const DRIVER_VERSION: &str = "580.95.05";

const EVENT_XID_CRITICAL: c_ulonglong = 8;
const MIB: c_ulonglong = 1024 * 1024;

/// `nvmlMemory_t`.
#[repr(C)]
pub struct Memory {
    total: c_ulonglong,
    free: c_ulonglong,
    used: c_ulonglong,
}

/// `nvmlMemory_v2_t`.
#[repr(C)]
pub struct MemoryV2 {
    version: c_uint,
    total: c_ulonglong,
    reserved: c_ulonglong,
    free: c_ulonglong,
    used: c_ulonglong,
}

/// `nvmlUtilization_t`.
#[repr(C)]
pub struct Utilization {
    gpu: c_uint,
    memory: c_uint,
}

/// `nvmlEventData_t`.
#[repr(C)]
pub struct EventData {
    device: *mut c_void,
    event_type: c_ulonglong,
    event_data: c_ulonglong,
    gpu_instance_id: c_uint,
    compute_instance_id: c_uint,
}

struct EventSet {
    /// Event mask registered per device index.
    registered: Vec<c_ulonglong>,
    /// XID lines already reported.
    consumed: usize,
    freed: bool,
}

struct State {
    dir: PathBuf,
    gpus: Vec<Gpu>,
    inits: u32,
    sets: Vec<EventSet>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

#[repr(C)]
struct DlInfo {
    fname: *const c_char,
    fbase: *mut c_void,
    sname: *const c_char,
    saddr: *mut c_void,
}

unsafe extern "C" {
    fn dladdr(addr: *const c_void, info: *mut DlInfo) -> c_int;
}

/// The directory this library was loaded from.
fn library_dir() -> Option<PathBuf> {
    let mut info = DlInfo {
        fname: std::ptr::null(),
        fbase: std::ptr::null_mut(),
        sname: std::ptr::null(),
        saddr: std::ptr::null_mut(),
    };
    let addr = nvmlInit_v2 as *const c_void;
    // SAFETY: dladdr only reads `addr` and fills `info`; `fname` points into the loader's data.
    if unsafe { dladdr(addr, &mut info) } == 0 || info.fname.is_null() {
        return None;
    }
    // SAFETY: non-null, NUL-terminated by the loader.
    let path = unsafe { CStr::from_ptr(info.fname) }.to_str().ok()?;
    PathBuf::from(path).parent().map(PathBuf::from)
}

fn with_state<T>(f: impl FnOnce(&mut State) -> Result<T, Ret>) -> Result<T, Ret> {
    let mut guard = STATE.lock().map_err(|_| ERROR_UNKNOWN)?;
    match guard.as_mut() {
        Some(state) if state.inits > 0 => f(state),
        _ => Err(ERROR_UNINITIALIZED),
    }
}

fn ret(result: Result<(), Ret>) -> Ret {
    result.err().unwrap_or(SUCCESS)
}

fn device_index(state: &State, device: *mut c_void) -> Result<usize, Ret> {
    let index = (device as usize)
        .checked_sub(1)
        .ok_or(ERROR_INVALID_ARGUMENT)?;
    if index < state.gpus.len() {
        Ok(index)
    } else {
        Err(ERROR_INVALID_ARGUMENT)
    }
}

fn with_gpu<T>(device: *mut c_void, f: impl FnOnce(&Gpu) -> T) -> Result<T, Ret> {
    with_state(|s| {
        let i = device_index(s, device)?;
        // `nvml-standin.lost` lists GPU indices that have fallen off the bus.
        let lost = std::fs::read_to_string(s.dir.join("nvml-standin.lost")).unwrap_or_default();
        if lost.lines().any(|l| l.trim().parse() == Ok(i)) {
            return Err(ERROR_GPU_IS_LOST);
        }
        Ok(f(&s.gpus[i]))
    })
}

/// Writes `value` NUL-terminated into a caller buffer of `len` bytes.
fn write_str(value: &str, buf: *mut c_char, len: c_uint) -> Result<(), Ret> {
    if buf.is_null() {
        return Err(ERROR_INVALID_ARGUMENT);
    }
    let bytes = value.as_bytes();
    if bytes.len() + 1 > len as usize {
        return Err(ERROR_INSUFFICIENT_SIZE);
    }
    // SAFETY: the caller gave `len` writable bytes and we checked the string and NUL fit.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), buf, bytes.len());
        *buf.add(bytes.len()) = 0;
    }
    Ok(())
}

fn out<T>(ptr: *mut T, value: T) -> Result<(), Ret> {
    if ptr.is_null() {
        return Err(ERROR_INVALID_ARGUMENT);
    }
    // SAFETY: non-null pointer to a T the caller owns.
    unsafe { ptr.write(value) };
    Ok(())
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlInit_v2() -> Ret {
    let Ok(mut guard) = STATE.lock() else {
        return ERROR_UNKNOWN;
    };
    if let Some(state) = guard.as_mut() {
        state.inits += 1;
        return SUCCESS;
    }
    let Some(dir) = library_dir() else {
        return ERROR_UNKNOWN;
    };
    let Ok(text) = std::fs::read_to_string(dir.join("nvml-standin.conf")) else {
        return ERROR_DRIVER_NOT_LOADED;
    };
    let Ok(gpus) = config::parse(&text) else {
        return ERROR_UNKNOWN;
    };
    *guard = Some(State {
        dir,
        gpus,
        inits: 1,
        sets: Vec::new(),
    });
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlInitWithFlags(_flags: c_uint) -> Ret {
    nvmlInit_v2()
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlShutdown() -> Ret {
    let Ok(mut guard) = STATE.lock() else {
        return ERROR_UNKNOWN;
    };
    match guard.as_mut() {
        Some(state) if state.inits > 1 => state.inits -= 1,
        Some(_) => *guard = None,
        None => return ERROR_UNINITIALIZED,
    }
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlErrorString(result: Ret) -> *const c_char {
    let text: &'static CStr = match result {
        SUCCESS => c"Success",
        ERROR_UNINITIALIZED => c"Uninitialized",
        ERROR_INVALID_ARGUMENT => c"Invalid Argument",
        ERROR_NOT_SUPPORTED => c"Not Supported",
        ERROR_NO_PERMISSION => c"Insufficient Permissions",
        ERROR_NOT_FOUND => c"Not Found",
        ERROR_INSUFFICIENT_SIZE => c"Insufficient Size",
        ERROR_DRIVER_NOT_LOADED => c"Driver Not Loaded",
        ERROR_TIMEOUT => c"Timeout",
        ERROR_GPU_IS_LOST => c"GPU is lost",
        _ => c"Unknown Error",
    };
    text.as_ptr()
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlSystemGetDriverVersion(buf: *mut c_char, len: c_uint) -> Ret {
    ret(with_state(|s| {
        let text = std::fs::read_to_string(s.dir.join("nvml-standin.driver"));
        Ok(text.map_or_else(|_| DRIVER_VERSION.to_string(), |t| t.trim().to_string()))
    })
    .and_then(|v| write_str(&v, buf, len)))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetCount_v2(count: *mut c_uint) -> Ret {
    ret(with_state(|s| out(count, s.gpus.len() as c_uint)))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetHandleByIndex_v2(index: c_uint, device: *mut *mut c_void) -> Ret {
    ret(with_state(|s| {
        if index as usize >= s.gpus.len() {
            return Err(ERROR_INVALID_ARGUMENT);
        }
        out(device, (index as usize + 1) as *mut c_void)
    }))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetIndex(device: *mut c_void, index: *mut c_uint) -> Ret {
    ret(with_state(|s| {
        out(index, device_index(s, device)? as c_uint)
    }))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetUUID(device: *mut c_void, buf: *mut c_char, len: c_uint) -> Ret {
    ret(with_gpu(device, |g| g.uuid.clone()).and_then(|u| write_str(&u, buf, len)))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetName(device: *mut c_void, buf: *mut c_char, len: c_uint) -> Ret {
    ret(with_gpu(device, |g| g.name.clone()).and_then(|n| write_str(&n, buf, len)))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetMemoryInfo(device: *mut c_void, memory: *mut Memory) -> Ret {
    ret(
        with_gpu(device, |g| (g.memory_mib, g.used_mib)).and_then(|(total, used)| {
            let (total, used) = (total * MIB, used.min(total) * MIB);
            out(
                memory,
                Memory {
                    total,
                    used,
                    free: total - used,
                },
            )
        }),
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetMemoryInfo_v2(device: *mut c_void, memory: *mut MemoryV2) -> Ret {
    ret(
        with_gpu(device, |g| (g.memory_mib, g.used_mib)).and_then(|(total, used)| {
            let (total, used) = (total * MIB, used.min(total) * MIB);
            let version = (std::mem::size_of::<MemoryV2>() | (2 << 24)) as c_uint;
            out(
                memory,
                MemoryV2 {
                    version,
                    total,
                    reserved: 0,
                    free: total - used,
                    used,
                },
            )
        }),
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetMigMode(
    device: *mut c_void,
    current: *mut c_uint,
    pending: *mut c_uint,
) -> Ret {
    ret(with_gpu(device, |g| c_uint::from(g.mig))
        .and_then(|mode| out(current, mode).and_then(|()| out(pending, mode))))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetCudaComputeCapability(
    device: *mut c_void,
    major: *mut c_int,
    minor: *mut c_int,
) -> Ret {
    ret(with_gpu(device, |g| g.compute_capability)
        .and_then(|(ma, mi)| out(major, ma).and_then(|()| out(minor, mi))))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetUtilizationRates(
    device: *mut c_void,
    util: *mut Utilization,
) -> Ret {
    ret(with_gpu(device, |g| g.util_percent)
        .and_then(|gpu| out(util, Utilization { gpu, memory: gpu })))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlEventSetCreate(set: *mut *mut c_void) -> Ret {
    ret(with_state(|s| {
        s.sets.push(EventSet {
            registered: vec![0; s.gpus.len()],
            consumed: 0,
            freed: false,
        });
        out(set, s.sets.len() as *mut c_void)
    }))
}

fn set_index(state: &State, set: *mut c_void) -> Result<usize, Ret> {
    let i = (set as usize)
        .checked_sub(1)
        .ok_or(ERROR_INVALID_ARGUMENT)?;
    match state.sets.get(i) {
        Some(s) if !s.freed => Ok(i),
        _ => Err(ERROR_INVALID_ARGUMENT),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlEventSetFree(set: *mut c_void) -> Ret {
    ret(with_state(|s| {
        let i = set_index(s, set)?;
        s.sets[i].freed = true;
        Ok(())
    }))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetSupportedEventTypes(
    device: *mut c_void,
    types: *mut c_ulonglong,
) -> Ret {
    ret(with_gpu(device, |_| EVENT_XID_CRITICAL).and_then(|t| out(types, t)))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceRegisterEvents(
    device: *mut c_void,
    types: c_ulonglong,
    set: *mut c_void,
) -> Ret {
    ret(with_state(|s| {
        let d = device_index(s, device)?;
        let i = set_index(s, set)?;
        if types & !EVENT_XID_CRITICAL != 0 || !s.gpus[d].events {
            return Err(ERROR_NOT_SUPPORTED);
        }
        s.sets[i].registered[d] |= types;
        Ok(())
    }))
}

/// The next unreported XID line for this set that a registered device listens to.
fn next_event(set: *mut c_void) -> Result<Option<EventData>, Ret> {
    with_state(|s| {
        let i = set_index(s, set)?;
        let text = std::fs::read_to_string(s.dir.join("nvml-standin.xid")).unwrap_or_default();
        // Only whole lines: the test may be halfway through appending one.
        let lines: Vec<&str> = text
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .collect();
        while s.sets[i].consumed < lines.len() {
            let line = lines[s.sets[i].consumed];
            s.sets[i].consumed += 1;
            let Some((index, xid)) = config::parse_xid(line) else {
                continue;
            };
            if s.sets[i]
                .registered
                .get(index)
                .is_some_and(|m| m & EVENT_XID_CRITICAL != 0)
            {
                return Ok(Some(EventData {
                    device: (index + 1) as *mut c_void,
                    event_type: EVENT_XID_CRITICAL,
                    event_data: xid,
                    gpu_instance_id: 0,
                    compute_instance_id: 0,
                }));
            }
        }
        Ok(None)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlEventSetWait_v2(
    set: *mut c_void,
    data: *mut EventData,
    timeout_ms: c_uint,
) -> Ret {
    let deadline = Instant::now() + Duration::from_millis(u64::from(timeout_ms));
    loop {
        match next_event(set) {
            Ok(Some(event)) => return ret(out(data, event)),
            Ok(None) if Instant::now() >= deadline => return ERROR_TIMEOUT,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(code) => return code,
        }
    }
}

fn mode_file(state: &State, index: usize) -> PathBuf {
    state.dir.join(format!("nvml-standin.mode.{index}"))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetComputeMode(device: *mut c_void, mode: *mut c_uint) -> Ret {
    ret(with_state(|s| {
        let i = device_index(s, device)?;
        let text = std::fs::read_to_string(mode_file(s, i)).unwrap_or_default();
        out(mode, text.trim().parse().unwrap_or(0))
    }))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceSetComputeMode(device: *mut c_void, mode: c_uint) -> Ret {
    ret(with_state(|s| {
        let i = device_index(s, device)?;
        if s.dir.join("nvml-standin.noroot").exists() {
            return Err(ERROR_NO_PERMISSION);
        }
        if mode > 3 {
            return Err(ERROR_INVALID_ARGUMENT);
        }
        std::fs::write(mode_file(s, i), format!("{mode}\n")).map_err(|_| ERROR_UNKNOWN)
    }))
}
