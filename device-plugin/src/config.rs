//! Command-line arguments of `tessera device-plugin` and the validated [`Config`] they become
//! (STYLE.md 4). Every host path is a flag with the kubelet's default.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use thiserror::Error;

/// Flags of `tessera device-plugin`.
#[derive(Debug, Clone, Args)]
pub struct DevicePluginArgs {
    /// NVML library to load: a path, or a name the dynamic loader searches.
    #[arg(long, env = "TESSERA_NVML_LIB", default_value = crate::nvml::DEFAULT_LIB)]
    pub nvml_lib: PathBuf,
    /// The kubelet's device plugin directory (holds kubelet.sock and our socket).
    #[arg(
        long,
        env = "TESSERA_PLUGIN_DIR",
        default_value = "/var/lib/kubelet/device-plugins"
    )]
    pub plugin_dir: PathBuf,
    /// File name of our socket inside the plugin directory.
    #[arg(
        long,
        env = "TESSERA_PLUGIN_SOCKET",
        default_value = "tessera-gpu.sock"
    )]
    pub socket_name: String,
    /// The kubelet's registration socket [default: <plugin-dir>/kubelet.sock].
    #[arg(long, env = "TESSERA_KUBELET_SOCKET")]
    pub kubelet_socket: Option<PathBuf>,
    /// The kubelet's PodResources socket.
    #[arg(
        long,
        env = "TESSERA_POD_RESOURCES_SOCKET",
        default_value = "/var/lib/kubelet/pod-resources/kubelet.sock"
    )]
    pub pod_resources_socket: PathBuf,
    /// Correct `gpu-assignment` annotations from PodResources (true or false).
    #[arg(long, env = "TESSERA_RECONCILE", default_value_t = true, action = clap::ArgAction::Set)]
    pub reconcile: bool,
    /// This node's name (downward API `spec.nodeName`).
    #[arg(long, env = "TESSERA_NODE_NAME", default_value = "")]
    pub node_name: String,
    /// Slots advertised per healthy GPU (1–1000).
    #[arg(long, env = "TESSERA_SLOTS_PER_GPU", default_value_t = 10)]
    pub slots_per_gpu: u32,
    /// Seconds without a critical XID before an unhealthy GPU is offered again.
    #[arg(long, env = "TESSERA_RECOVER_AFTER_SECONDS", default_value_t = 300)]
    pub recover_after_seconds: u64,
    /// Seconds between NVML health checks (a GPU NVML no longer answers for is unhealthy).
    #[arg(long, env = "TESSERA_HEALTH_CHECK_SECONDS", default_value_t = 10)]
    pub health_check_seconds: u64,
    /// Seconds between PodResources reconciliations.
    #[arg(long, env = "TESSERA_RECONCILE_SECONDS", default_value_t = 30)]
    pub reconcile_seconds: u64,
    /// Seconds between inventory heartbeats.
    #[arg(long, env = "TESSERA_HEARTBEAT_SECONDS", default_value_t = 60)]
    pub heartbeat_seconds: u64,
    /// Least seconds between two inventory writes.
    #[arg(
        long,
        env = "TESSERA_INVENTORY_MIN_INTERVAL_SECONDS",
        default_value_t = 5
    )]
    pub inventory_min_interval_seconds: u64,
    /// Root directory of `tessera mps-daemon` on the node (its status file, pipe and shm
    /// directories), mounted at the same path in this container. Unset: no MPS; shares are then
    /// not isolated, and the extender places only whole GPUs here unless it runs with
    /// --soft-sharing.
    #[arg(long, env = "TESSERA_MPS_ROOT")]
    pub mps_root: Option<PathBuf>,
    /// Milliseconds between two reads of the MPS daemon's status file.
    #[arg(long, env = "TESSERA_MPS_POLL_MS", default_value_t = 1000)]
    pub mps_poll_ms: u64,
    /// Seconds after which an unrenewed MPS status counts as a daemon that is gone.
    #[arg(long, env = "TESSERA_MPS_STATUS_MAX_AGE_SECONDS", default_value_t = 10)]
    pub mps_status_max_age_seconds: u64,
    /// The host's /proc, where `<pid>/cgroup` names the container of each GPU process NVML
    /// reports (host PIDs: the DaemonSet runs with hostPID). Empty: no per-container metrics.
    // clap's PathBuf parser refuses an empty value, which means "off" here.
    #[arg(
        long,
        env = "TESSERA_PROC_ROOT",
        default_value = "/proc",
        value_parser = clap::builder::TypedValueParser::map(clap::builder::OsStringValueParser::new(), PathBuf::from)
    )]
    pub proc_root: PathBuf,
    /// Seconds between two reads of the node's status for another device plugin's GPUs
    /// (nvidia.com/gpu); while one advertises them this plugin offers no share.
    #[arg(long, env = "TESSERA_COEXISTENCE_CHECK_SECONDS", default_value_t = 60)]
    pub coexistence_check_seconds: u64,
}

/// Validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// NVML library path or name.
    pub nvml_lib: PathBuf,
    /// Device plugin directory.
    pub plugin_dir: PathBuf,
    /// Our socket's file name (the `endpoint` we register).
    pub socket_name: String,
    /// The kubelet's registration socket.
    pub kubelet_socket: PathBuf,
    /// PodResources socket, `None` when reconciliation is off.
    pub pod_resources_socket: Option<PathBuf>,
    /// Node name.
    pub node_name: String,
    /// Slots per GPU.
    pub slots_per_gpu: u32,
    /// Quiet period before a GPU recovers.
    pub recover_after: Duration,
    /// Health check (and GPU usage metrics) period.
    pub health_check_every: Duration,
    /// Reconciliation period.
    pub reconcile_every: Duration,
    /// Heartbeat period.
    pub heartbeat_every: Duration,
    /// Least time between inventory writes.
    pub inventory_min_interval: Duration,
    /// The MPS daemon's root, when MPS isolation is on.
    pub mps_root: Option<PathBuf>,
    /// Status file poll period.
    pub mps_poll: Duration,
    /// Oldest status heartbeat still taken as a live daemon, seconds.
    pub mps_status_max_age_secs: i64,
    /// The host's /proc; `None`: no per-container accounting.
    pub proc_root: Option<PathBuf>,
    /// Period of the check for another device plugin on this node.
    pub coexistence_check_every: Duration,
}

impl Config {
    /// Our socket's full path.
    pub fn socket_path(&self) -> PathBuf {
        self.plugin_dir.join(&self.socket_name)
    }
}

/// A flag with a value the plugin cannot run with.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required flag is empty.
    #[error("--{flag} is required (or set {env})")]
    Missing {
        /// Flag name.
        flag: &'static str,
        /// Environment variable.
        env: &'static str,
    },
    /// A value outside its range.
    #[error("--{flag} {value} is out of range ({range})")]
    Range {
        /// Flag name.
        flag: &'static str,
        /// Value given.
        value: u64,
        /// Allowed range.
        range: &'static str,
    },
    /// The socket name is not a plain file name.
    #[error("--socket-name {0:?} must be a file name without '/'")]
    SocketName(String),
    /// The MPS root must be the same absolute path on the node and in every container.
    #[error("--mps-root {0:?} must be an absolute path (it is mounted at the same path)")]
    MpsRoot(PathBuf),
}

impl TryFrom<DevicePluginArgs> for Config {
    type Error = ConfigError;

    fn try_from(a: DevicePluginArgs) -> Result<Self, ConfigError> {
        if a.node_name.is_empty() {
            return Err(ConfigError::Missing {
                flag: "node-name",
                env: "TESSERA_NODE_NAME",
            });
        }
        if a.socket_name.is_empty() || a.socket_name.contains('/') {
            return Err(ConfigError::SocketName(a.socket_name));
        }
        let range = |flag, value: u64, lo: u64, hi: u64, text| {
            if (lo..=hi).contains(&value) {
                Ok(value)
            } else {
                Err(ConfigError::Range {
                    flag,
                    value,
                    range: text,
                })
            }
        };
        let slots = range("slots-per-gpu", a.slots_per_gpu.into(), 1, 1000, "1-1000")?;
        let secs = |flag, v| range(flag, v, 1, 86_400, "1-86400 seconds").map(Duration::from_secs);
        let kubelet_socket = a
            .kubelet_socket
            .unwrap_or_else(|| a.plugin_dir.join("kubelet.sock"));
        let pod_resources_socket = Some(a.pod_resources_socket).filter(|_| a.reconcile);
        let mps_root = a.mps_root.filter(|p| !p.as_os_str().is_empty());
        if mps_root.as_ref().is_some_and(|p| p.is_relative()) {
            return Err(ConfigError::MpsRoot(mps_root.unwrap_or_default()));
        }
        let mps_poll = range("mps-poll-ms", a.mps_poll_ms, 50, 60_000, "50-60000 ms")?;
        let max_age = range(
            "mps-status-max-age-seconds",
            a.mps_status_max_age_seconds,
            1,
            3600,
            "1-3600 seconds",
        )?;
        Ok(Config {
            nvml_lib: a.nvml_lib,
            plugin_dir: a.plugin_dir,
            socket_name: a.socket_name,
            kubelet_socket,
            pod_resources_socket,
            node_name: a.node_name,
            slots_per_gpu: slots as u32,
            recover_after: secs("recover-after-seconds", a.recover_after_seconds)?,
            health_check_every: secs("health-check-seconds", a.health_check_seconds)?,
            reconcile_every: secs("reconcile-seconds", a.reconcile_seconds)?,
            heartbeat_every: secs("heartbeat-seconds", a.heartbeat_seconds)?,
            inventory_min_interval: secs(
                "inventory-min-interval-seconds",
                a.inventory_min_interval_seconds,
            )?,
            mps_root,
            mps_poll: Duration::from_millis(mps_poll),
            mps_status_max_age_secs: i64::try_from(max_age).unwrap_or(3600),
            proc_root: Some(a.proc_root).filter(|p| !p.as_os_str().is_empty()),
            coexistence_check_every: secs(
                "coexistence-check-seconds",
                a.coexistence_check_seconds,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: DevicePluginArgs,
    }

    fn config(args: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["tessera"];
        argv.extend_from_slice(args);
        Config::try_from(Cli::try_parse_from(argv).unwrap().args)
    }

    #[test]
    fn defaults_are_the_kubelets_paths() {
        let c = config(&["--node-name", "gpu-1"]).unwrap();
        assert_eq!(
            c.socket_path(),
            PathBuf::from("/var/lib/kubelet/device-plugins/tessera-gpu.sock")
        );
        assert_eq!(
            c.kubelet_socket,
            PathBuf::from("/var/lib/kubelet/device-plugins/kubelet.sock")
        );
        assert_eq!(
            c.pod_resources_socket,
            Some(PathBuf::from("/var/lib/kubelet/pod-resources/kubelet.sock"))
        );
        assert_eq!(c.slots_per_gpu, 10);
        assert_eq!(c.nvml_lib, PathBuf::from("libnvidia-ml.so.1"));
        assert_eq!(c.mps_root, None, "MPS is opt-in: no daemon, no isolation");
        assert_eq!(c.proc_root, Some(PathBuf::from("/proc")));
        assert_eq!(c.coexistence_check_every, Duration::from_secs(60));
    }

    #[test]
    fn an_empty_proc_root_turns_container_accounting_off() {
        let c = config(&["--node-name", "n", "--proc-root", ""]).unwrap();
        assert_eq!(c.proc_root, None);
    }

    #[test]
    fn mps_root_must_be_absolute() {
        let c = config(&["--node-name", "n", "--mps-root", "/run/tessera/mps"]).unwrap();
        assert_eq!(c.mps_root, Some(PathBuf::from("/run/tessera/mps")));
        assert_eq!(
            config(&["--node-name", "n", "--mps-root", "run/mps"])
                .unwrap_err()
                .to_string(),
            "--mps-root \"run/mps\" must be an absolute path (it is mounted at the same path)"
        );
    }

    #[test]
    fn kubelet_socket_follows_the_plugin_dir() {
        let c = config(&[
            "--node-name",
            "n",
            "--plugin-dir",
            "/tmp/dp",
            "--reconcile",
            "false",
        ])
        .unwrap();
        assert_eq!(c.kubelet_socket, PathBuf::from("/tmp/dp/kubelet.sock"));
        assert_eq!(c.pod_resources_socket, None);
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(
            config(&[]).unwrap_err().to_string(),
            "--node-name is required (or set TESSERA_NODE_NAME)"
        );
        assert_eq!(
            config(&["--node-name", "n", "--slots-per-gpu", "0"])
                .unwrap_err()
                .to_string(),
            "--slots-per-gpu 0 is out of range (1-1000)"
        );
        assert_eq!(
            config(&["--node-name", "n", "--socket-name", "a/b"])
                .unwrap_err()
                .to_string(),
            "--socket-name \"a/b\" must be a file name without '/'"
        );
    }
}
