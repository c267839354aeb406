//! A share as the DRA path asks for it, and the name of its ResourceClaimTemplate.
//!
//! The name says everything the template holds, so the controller that makes templates needs
//! nothing but the name a pod gives (a pod cannot carry a template): `tessera-share-`, then
//! `<N>x-` when more than one GPU, then the memory per GPU (`<MiB>mi`, or `whole` when the pod
//! names none), then the compute percent. `tessera-share-8192mi-25` is 8 GiB and 25% of one GPU.

use tessera_kernel::request::{GpuDemand, MILLI_PER_GPU};

/// Every template name the webhook writes starts with this.
pub const TEMPLATE_PREFIX: &str = "tessera-share-";

/// The DRA plugin's memory grid (its `validRange` step and minimum, `dra/src/decide/slice.rs`):
/// MPS rounds pinned memory, so a share is asked for in these steps.
pub const MEMORY_STEP_MIB: u64 = 256;

/// The compute of a GPU, percent (the plugin's `compute` capacity).
pub const WHOLE_PERCENT: u32 = 100;

/// One container's claim: on each of `gpus` distinct GPUs, `memory_mib` (none: the whole GPU's,
/// the plugin's default) and `percent` of the compute (0 for a memory share alone, which holds
/// no compute and gets no thread limit, as on the device-plugin path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// Distinct GPUs, at least 1.
    pub gpus: u32,
    /// MiB per GPU, on the plugin's grid; `None` asks for no amount (the whole GPU's memory).
    pub memory_mib: Option<u64>,
    /// Percent of each GPU's compute, 0–100.
    pub percent: u32,
}

impl Share {
    /// The share the DRA path asks for a container's demand. Memory goes up to the plugin's grid
    /// (the scheduler would round it so too, and the template then says what is held).
    /// Memory the pod does not name is asked whole (the plugin's default). Compute is asked as
    /// the demand holds it: a memory share alone holds none (`compute: 0`, which the plugin's
    /// policy accepts), so it packs beside compute shares and MPS sets no thread limit for it,
    /// as on the device-plugin path.
    pub fn of(demand: &GpuDemand) -> Share {
        let memory_mib = (demand.mem_mib > 0 && !demand.exclusive())
            .then(|| demand.mem_mib.div_ceil(MEMORY_STEP_MIB) * MEMORY_STEP_MIB);
        let percent = demand.core_milli.min(MILLI_PER_GPU).div_ceil(10);
        Share {
            gpus: demand.gpus.max(1),
            memory_mib,
            percent,
        }
    }

    /// The template's name.
    pub fn template_name(&self) -> String {
        let count = match self.gpus {
            1 => String::new(),
            n => format!("{n}x-"),
        };
        let memory = match self.memory_mib {
            Some(mib) => format!("{mib}mi"),
            None => "whole".to_string(),
        };
        format!("{TEMPLATE_PREFIX}{count}{memory}-{}", self.percent)
    }

    /// Reads a template name back; `None` for a name the webhook would not have written (so a
    /// user's own `tessera-share-…` template with another spelling is left alone).
    pub fn from_template_name(name: &str) -> Option<Share> {
        let rest = name.strip_prefix(TEMPLATE_PREFIX)?;
        let mut parts: Vec<&str> = rest.split('-').collect();
        let gpus = match parts.first()?.strip_suffix('x') {
            Some(n) if parts.len() == 3 => {
                let n = n.parse().ok()?;
                parts.remove(0);
                n
            }
            _ => 1,
        };
        let [memory, percent] = parts.as_slice() else {
            return None;
        };
        let memory_mib = match *memory {
            "whole" => None,
            m => Some(m.strip_suffix("mi")?.parse().ok()?),
        };
        let share = Share {
            gpus,
            memory_mib,
            percent: percent.parse().ok()?,
        };
        // Only the spelling `template_name` writes, on the plugin's grid and ranges.
        let valid = share.gpus >= 1
            && share.percent <= WHOLE_PERCENT
            && share
                .memory_mib
                .is_none_or(|m| m >= MEMORY_STEP_MIB && m % MEMORY_STEP_MIB == 0);
        (valid && share.template_name() == name).then_some(share)
    }
}
