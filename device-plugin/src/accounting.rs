//! Per-container accounting: joins NVML's GPU processes to the containers holding shares, for
//! the `container_gpu_*` metrics. Each process' `<proc-root>/<pid>/cgroup` names its pod and
//! container; the parsing and the join are `tessera_core::plugin::{cgroup, accounting}`.
//!
//! NVML reports host PIDs (the driver ignores PID namespaces), so `--proc-root` must be the
//! host's /proc as seen from the host PID namespace: the DaemonSet runs with `hostPID: true`.

use std::collections::BTreeMap;
use std::path::Path;

use tessera_core::plugin::accounting::{self, GpuProcesses};
use tessera_core::plugin::cgroup::{self, CgroupOwner};

use crate::state::Shared;

/// The cgroup owner of every PID in `gpus` whose cgroup file names a pod's container. A process
/// that ended between NVML's answer and the read simply has none.
pub fn owners(proc_root: &Path, gpus: &[GpuProcesses]) -> BTreeMap<u32, CgroupOwner> {
    gpus.iter()
        .flat_map(|g| g.processes.iter().map(|p| p.pid))
        .filter_map(|pid| {
            let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup"));
            Some((pid, cgroup::owner(&text.ok()?)?))
        })
        .collect()
}

/// Sets the per-container metrics from `gpus` and `owners` against the pods on this node.
/// Without a pod list the previous figures stay: a watch hiccup must not blank the series.
pub fn record(shared: &Shared, gpus: &[GpuProcesses], owners: &BTreeMap<u32, CgroupOwner>) {
    let pods = match shared.pods.containers() {
        Ok(pods) => pods,
        Err(e) => {
            tracing::debug!(error = %e, "no pod list for per-container accounting");
            return;
        }
    };
    let usage = accounting::join(gpus, owners, &pods);
    for u in usage.iter().filter(|u| u.over_limit()) {
        tracing::debug!(
            pod = %format!("{}/{}", u.namespace, u.pod),
            container = %u.container,
            gpu = %u.gpu,
            used_bytes = u.used_bytes,
            limit_bytes = u.limit_bytes,
            "container holds more GPU memory than its share"
        );
    }
    shared
        .metrics
        .set_containers(&shared.config.node_name, &usage);
}
