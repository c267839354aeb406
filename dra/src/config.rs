//! Command-line arguments of `tessera dra-plugin` and the validated [`Config`] they become
//! (STYLE.md 4). Every host path is a flag with the kubelet's or CDI's default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use thiserror::Error;

use crate::names;

/// Flags of `tessera dra-plugin`.
#[derive(Debug, Clone, Args)]
pub struct DraPluginArgs {
    /// NVML library to load: a path, or a name the dynamic loader searches.
    #[arg(long, env = "TESSERA_NVML_LIB", default_value = crate::nvml::DEFAULT_LIB)]
    pub nvml_lib: PathBuf,
    /// The kubelet's root directory (--root-dir): holds plugins_registry/ and plugins/.
    #[arg(long, env = "TESSERA_KUBELET_ROOT", default_value = "/var/lib/kubelet")]
    pub kubelet_root: PathBuf,
    /// Where CDI spec files are written for the container runtime to read.
    #[arg(long, env = "TESSERA_CDI_DIR", default_value = "/var/run/cdi")]
    pub cdi_dir: PathBuf,
    /// This node's name (downward API `spec.nodeName`).
    #[arg(long, env = "TESSERA_NODE_NAME", default_value = "")]
    pub node_name: String,
    /// Root directory of `tessera mps-daemon` on the node, mounted at the same path here.
    /// Unset: no MPS; every GPU is then tainted mps-not-ready and only claims that tolerate
    /// it get one.
    #[arg(long, env = "TESSERA_MPS_ROOT")]
    pub mps_root: Option<PathBuf>,
    /// Milliseconds between two reads of the MPS daemon's status file.
    #[arg(long, env = "TESSERA_MPS_POLL_MS", default_value_t = 1000)]
    pub mps_poll_ms: u64,
    /// Seconds after which an unrenewed MPS status counts as a daemon that is gone.
    #[arg(long, env = "TESSERA_MPS_STATUS_MAX_AGE_SECONDS", default_value_t = 10)]
    pub mps_status_max_age_seconds: u64,
    /// Seconds between NVML health checks (a GPU NVML no longer answers for is tainted).
    #[arg(long, env = "TESSERA_HEALTH_CHECK_SECONDS", default_value_t = 10)]
    pub health_check_seconds: u64,
    /// Seconds a lost GPU must answer again before its taint goes.
    #[arg(long, env = "TESSERA_RECOVER_AFTER_SECONDS", default_value_t = 300)]
    pub recover_after_seconds: u64,
    /// Seconds between two re-publications of the ResourceSlice when nothing changed (repairs
    /// a slice someone else changed or deleted).
    #[arg(long, env = "TESSERA_RESYNC_SECONDS", default_value_t = 300)]
    pub resync_seconds: u64,
}

/// Validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// NVML library path or name.
    pub nvml_lib: PathBuf,
    /// The kubelet's plugin watcher directory (`<root>/plugins_registry`).
    pub registry_dir: PathBuf,
    /// Our own directory (`<root>/plugins/gpu.tessera.dev`): the DRA socket and the checkpoint.
    pub plugin_dir: PathBuf,
    /// The CDI spec directory.
    pub cdi_dir: PathBuf,
    /// Node name.
    pub node_name: String,
    /// The MPS daemon's root, when MPS isolation is on.
    pub mps_root: Option<PathBuf>,
    /// Status file poll period.
    pub mps_poll: Duration,
    /// Oldest status heartbeat still taken as a live daemon, seconds.
    pub mps_status_max_age_secs: i64,
    /// NVML health check period.
    pub health_check_every: Duration,
    /// Quiet period before a lost GPU is offered again.
    pub recover_after: Duration,
    /// Re-publication period of an unchanged slice.
    pub resync_every: Duration,
}

impl Config {
    /// The registration socket the kubelet's plugin watcher finds.
    pub fn registration_socket(&self) -> PathBuf {
        self.registry_dir
            .join(format!("{}-reg.sock", names::DRIVER))
    }

    /// The DRA service's socket (the endpoint we register).
    pub fn dra_socket(&self) -> PathBuf {
        self.plugin_dir.join("dra.sock")
    }

    /// The prepared claims' checkpoint.
    pub fn checkpoint(&self) -> PathBuf {
        self.plugin_dir.join("checkpoint.json")
    }
}

/// A flag value that cannot work.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `--node-name` is empty.
    #[error("--node-name (TESSERA_NODE_NAME) is required: the ResourceSlice names its node")]
    NoNodeName,
    /// A path that is handed to the kubelet or the runtime must be absolute.
    #[error("{flag} must be an absolute path, got {path:?}")]
    Relative {
        /// The flag.
        flag: &'static str,
        /// Its value.
        path: PathBuf,
    },
    /// A period of zero.
    #[error("{flag} must be above zero")]
    Zero {
        /// The flag.
        flag: &'static str,
    },
}

impl TryFrom<DraPluginArgs> for Config {
    type Error = ConfigError;

    fn try_from(a: DraPluginArgs) -> Result<Self, ConfigError> {
        if a.node_name.is_empty() {
            return Err(ConfigError::NoNodeName);
        }
        absolute("--kubelet-root", &a.kubelet_root)?;
        absolute("--cdi-dir", &a.cdi_dir)?;
        if let Some(root) = &a.mps_root {
            absolute("--mps-root", root)?;
        }
        for (flag, v) in [
            ("--mps-poll-ms", a.mps_poll_ms),
            ("--health-check-seconds", a.health_check_seconds),
            ("--resync-seconds", a.resync_seconds),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero { flag });
            }
        }
        Ok(Config {
            nvml_lib: a.nvml_lib,
            registry_dir: a.kubelet_root.join("plugins_registry"),
            plugin_dir: a.kubelet_root.join("plugins").join(names::DRIVER),
            cdi_dir: a.cdi_dir,
            node_name: a.node_name,
            mps_root: a.mps_root,
            mps_poll: Duration::from_millis(a.mps_poll_ms),
            mps_status_max_age_secs: i64::try_from(a.mps_status_max_age_seconds)
                .unwrap_or(i64::MAX),
            health_check_every: Duration::from_secs(a.health_check_seconds),
            recover_after: Duration::from_secs(a.recover_after_seconds),
            resync_every: Duration::from_secs(a.resync_seconds),
        })
    }
}

fn absolute(flag: &'static str, path: &Path) -> Result<(), ConfigError> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(ConfigError::Relative {
            flag,
            path: path.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: DraPluginArgs,
    }

    fn config(args: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["tessera"];
        all.extend_from_slice(args);
        Config::try_from(Cli::try_parse_from(all).unwrap().args)
    }

    #[test]
    fn defaults_are_the_kubelets_paths() {
        let c = config(&["--node-name", "n1"]).unwrap();
        assert_eq!(
            c.registration_socket(),
            PathBuf::from("/var/lib/kubelet/plugins_registry/gpu.tessera.dev-reg.sock")
        );
        assert_eq!(
            c.dra_socket(),
            PathBuf::from("/var/lib/kubelet/plugins/gpu.tessera.dev/dra.sock")
        );
        assert_eq!(
            c.checkpoint(),
            PathBuf::from("/var/lib/kubelet/plugins/gpu.tessera.dev/checkpoint.json")
        );
        assert_eq!(c.cdi_dir, PathBuf::from("/var/run/cdi"));
        assert_eq!(c.mps_root, None);
    }

    #[test]
    fn kubelet_root_moves_both_sockets() {
        let c = config(&["--node-name", "n1", "--kubelet-root", "/data/kubelet"]).unwrap();
        assert!(
            c.registration_socket()
                .starts_with("/data/kubelet/plugins_registry")
        );
        assert!(c.dra_socket().starts_with("/data/kubelet/plugins"));
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(config(&[]), Err(ConfigError::NoNodeName));
        assert!(matches!(
            config(&["--node-name", "n", "--cdi-dir", "cdi"]),
            Err(ConfigError::Relative {
                flag: "--cdi-dir",
                ..
            })
        ));
        assert!(matches!(
            config(&["--node-name", "n", "--mps-root", "mps"]),
            Err(ConfigError::Relative {
                flag: "--mps-root",
                ..
            })
        ));
        assert_eq!(
            config(&["--node-name", "n", "--resync-seconds", "0"]),
            Err(ConfigError::Zero {
                flag: "--resync-seconds"
            })
        );
    }
}
