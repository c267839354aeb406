//! `tessera inspect --claims`: the DRA path's view. Per GPU that `tessera dra-plugin` publishes,
//! its capacity and the shares ResourceClaims hold of it; per claim of driver
//! `gpu.tessera.dev`, where it landed, what it consumed and which pods use it. Pure: it reads
//! the ResourceSlices and ResourceClaims it is given.

use std::collections::BTreeMap;
use std::fmt::Write;

use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceSlice};
use serde::Serialize;
use tessera_dra_plugin::names::{CAPACITY_COMPUTE, CAPACITY_MEMORY, DRIVER};
use tessera_kernel::quantity::parse_whole;

/// One share a claim holds of one GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimShare {
    /// `namespace/name` of the claim.
    pub claim: String,
    /// The claim's request the share answers.
    pub request: String,
    /// The pool (the node) and device (`gpu-N`).
    pub pool: String,
    /// Device within the pool.
    pub device: String,
    /// Memory consumed, bytes (`None`: the whole GPU).
    pub memory_bytes: Option<u64>,
    /// Compute consumed, percent (`None`: the whole GPU).
    pub compute_percent: Option<u64>,
    /// Pods the claim is reserved for.
    pub pods: Vec<String>,
}

/// One GPU published by the DRA plugin, with what its claims hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRow {
    /// The pool (the node).
    pub pool: String,
    /// `gpu-N`.
    pub device: String,
    /// Memory capacity, bytes.
    pub memory_bytes: u64,
    /// Memory held by claims, bytes (a whole-GPU claim holds all of it).
    pub memory_held: u64,
    /// Compute held by claims, percent.
    pub compute_held: u64,
    /// Taint keys on the device (a GPU without live MPS isolation carries one).
    pub taints: Vec<String>,
    /// The claims holding shares of it.
    pub claims: Vec<String>,
}

/// The whole view: GPUs and shares, plus claims of the driver still waiting for allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimsView {
    /// Every GPU of driver `gpu.tessera.dev`, by pool then device.
    pub devices: Vec<DeviceRow>,
    /// Every allocated share.
    pub shares: Vec<ClaimShare>,
    /// `namespace/name` of claims that ask for the driver's DeviceClass and are not allocated.
    pub pending: Vec<String>,
    /// What could not be read (a bad quantity), naming the object.
    pub warnings: Vec<String>,
}

/// Builds the view; `namespace` limits the claims listed, not the devices.
pub fn view(
    slices: &[ResourceSlice],
    claims: &[ResourceClaim],
    namespace: Option<&str>,
) -> ClaimsView {
    let mut warnings = Vec::new();
    let mut devices: BTreeMap<(String, String), DeviceRow> = BTreeMap::new();
    for s in slices.iter().filter(|s| s.spec.driver == DRIVER) {
        let pool = &s.spec.pool.name;
        for d in s.spec.devices.iter().flatten() {
            let capacity = d.capacity.as_ref();
            let memory = capacity
                .and_then(|c| c.get(CAPACITY_MEMORY))
                .and_then(|c| parse_whole(&c.value.0).ok())
                .unwrap_or(0);
            let taints = d.taints.iter().flatten().map(|t| t.key.clone()).collect();
            devices.insert(
                (pool.clone(), d.name.clone()),
                DeviceRow {
                    pool: pool.clone(),
                    device: d.name.clone(),
                    memory_bytes: memory,
                    memory_held: 0,
                    compute_held: 0,
                    taints,
                    claims: Vec::new(),
                },
            );
        }
    }
    let (mut shares, mut pending) = (Vec::new(), Vec::new());
    for c in claims {
        let ns = c.metadata.namespace.as_deref().unwrap_or_default();
        let name = format!("{ns}/{}", c.metadata.name.as_deref().unwrap_or_default());
        // The DeviceClass carries the driver's name (manifests/dra-plugin/deviceclass.yaml).
        let ours = |class: &str| class == DRIVER;
        let results = c
            .status
            .as_ref()
            .and_then(|s| s.allocation.as_ref())
            .and_then(|a| a.devices.as_ref())
            .and_then(|d| d.results.as_deref())
            .unwrap_or_default();
        let held: Vec<_> = results.iter().filter(|r| r.driver == DRIVER).collect();
        let in_scope = namespace.is_none_or(|n| n == ns);
        if held.is_empty() {
            let asks = c.spec.devices.as_ref().is_some_and(|d| {
                d.requests.iter().flatten().any(|r| {
                    r.exactly
                        .as_ref()
                        .is_some_and(|e| ours(&e.device_class_name))
                })
            });
            if asks && in_scope && results.is_empty() {
                pending.push(name);
            }
            continue;
        }
        let pods: Vec<String> = c
            .status
            .as_ref()
            .and_then(|s| s.reserved_for.as_ref())
            .into_iter()
            .flatten()
            .filter(|r| r.resource == "pods")
            .map(|r| format!("{ns}/{}", r.name))
            .collect();
        for r in held {
            let mut consumed = |key: &str| {
                let q = r.consumed_capacity.as_ref()?.get(key)?;
                match parse_whole(&q.0) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        warnings.push(format!("resourceclaim {name}: {key} {e}"));
                        None
                    }
                }
            };
            let share = ClaimShare {
                claim: name.clone(),
                request: r.request.clone(),
                pool: r.pool.clone(),
                device: r.device.clone(),
                memory_bytes: consumed(CAPACITY_MEMORY),
                compute_percent: consumed(CAPACITY_COMPUTE),
                pods: pods.clone(),
            };
            // Held capacity counts every namespace: free room is shared by all of them.
            if let Some(d) = devices.get_mut(&(r.pool.clone(), r.device.clone())) {
                d.memory_held += share.memory_bytes.unwrap_or(d.memory_bytes);
                d.compute_held += share.compute_percent.unwrap_or(100);
                if in_scope {
                    d.claims.push(name.clone());
                }
            }
            if in_scope {
                shares.push(share);
            }
        }
    }
    shares.sort_by(|a, b| (&a.pool, &a.device, &a.claim).cmp(&(&b.pool, &b.device, &b.claim)));
    pending.sort();
    ClaimsView {
        devices: devices.into_values().collect(),
        shares,
        pending,
        warnings,
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1}Gi", bytes as f64 / f64::from(1u32 << 30))
}

impl ClaimsView {
    /// The view as two tables (GPUs, then shares) and the pending claims.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<24} {:<8} {:>20} {:>8} {:<28} CLAIMS",
            "POOL", "DEVICE", "MEMORY HELD/TOTAL", "COMPUTE", "TAINTS"
        );
        for d in &self.devices {
            let taints = if d.taints.is_empty() {
                "-".to_string()
            } else {
                d.taints.join(",")
            };
            let _ = writeln!(
                out,
                "{:<24} {:<8} {:>20} {:>7}% {:<28} {}",
                d.pool,
                d.device,
                format!("{}/{}", gib(d.memory_held), gib(d.memory_bytes)),
                d.compute_held,
                taints,
                d.claims.len()
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<40} {:<24} {:<8} {:>9} {:>8} PODS",
            "CLAIM", "POOL", "DEVICE", "MEMORY", "COMPUTE"
        );
        for s in &self.shares {
            let memory = s.memory_bytes.map_or("whole".to_string(), gib);
            let compute = s
                .compute_percent
                .map_or("whole".to_string(), |c| format!("{c}%"));
            let pods = if s.pods.is_empty() {
                "-".to_string()
            } else {
                s.pods.join(",")
            };
            let _ = writeln!(
                out,
                "{:<40} {:<24} {:<8} {:>9} {:>8} {pods}",
                s.claim, s.pool, s.device, memory, compute
            );
        }
        if !self.pending.is_empty() {
            let _ = writeln!(out, "\npending: {}", self.pending.join(", "));
        }
        out
    }
}

#[cfg(test)]
mod tests;
