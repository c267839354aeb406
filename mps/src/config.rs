//! Command-line arguments of `tessera mps-daemon` and the validated [`Config`] they become
//! (STYLE.md 4).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use thiserror::Error;

/// Whether to run MPS's multi-user server (`nvidia-cuda-mps-control -M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MultiUser {
    /// Try `-M`; when the control daemon refuses it (a driver without it), run without and say
    /// so in the status, so the extender keeps the node's clients to one user.
    Auto,
    /// Always `-M`; a driver without it never becomes ready.
    Always,
    /// Never `-M`: one Linux user's clients at a time.
    Never,
}

/// Flags of `tessera mps-daemon`.
#[derive(Debug, Clone, Args)]
pub struct MpsDaemonArgs {
    /// Root directory on the node: status file, `pipe/`, `log/` and `shm/` (the daemon's and
    /// every client's /dev/shm). The device plugin's --mps-root must name the same path.
    #[arg(long, env = "TESSERA_MPS_ROOT", default_value = tessera_core::plugin::mps::DEFAULT_ROOT)]
    pub mps_root: PathBuf,
    /// The MPS control program: a path, or a name searched in PATH.
    #[arg(
        long,
        env = "TESSERA_MPS_CONTROL",
        default_value = "nvidia-cuda-mps-control"
    )]
    pub mps_control: PathBuf,
    /// NVML library to load: a path, or a name the dynamic loader searches.
    #[arg(long, env = "TESSERA_NVML_LIB", default_value = "libnvidia-ml.so.1")]
    pub nvml_lib: PathBuf,
    /// Multi-user MPS server (`-M`): auto, always or never.
    #[arg(long, env = "TESSERA_MPS_MULTI_USER", value_enum, default_value_t = MultiUser::Auto)]
    pub multi_user: MultiUser,
    /// Milliseconds between health checks (`get_server_list`); each success renews the status
    /// file's heartbeat.
    #[arg(long, env = "TESSERA_MPS_HEALTH_MS", default_value_t = 2000)]
    pub health_ms: u64,
    /// Consecutive failed health checks before the control daemon is restarted.
    #[arg(long, env = "TESSERA_MPS_FAILURES", default_value_t = 3)]
    pub failures: u32,
    /// Seconds to wait for the control daemon to `quit` on shutdown before killing it.
    #[arg(long, env = "TESSERA_MPS_STOP_SECONDS", default_value_t = 20)]
    pub stop_seconds: u64,
}

/// Validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Root directory.
    pub root: PathBuf,
    /// Control program.
    pub control: PathBuf,
    /// NVML library.
    pub nvml_lib: PathBuf,
    /// Multi-user choice.
    pub multi_user: MultiUser,
    /// Health check period.
    pub health_every: Duration,
    /// Failed checks before a restart.
    pub failures: u32,
    /// Grace for `quit` on shutdown.
    pub stop_grace: Duration,
}

/// A flag with a value the daemon cannot run with.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The root must be absolute: the device plugin and the containers mount the same path.
    #[error("--mps-root {0:?} must be an absolute path")]
    Root(PathBuf),
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
}

impl TryFrom<MpsDaemonArgs> for Config {
    type Error = ConfigError;

    fn try_from(a: MpsDaemonArgs) -> Result<Self, ConfigError> {
        if a.mps_root.is_relative() {
            return Err(ConfigError::Root(a.mps_root));
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
        let health = range("health-ms", a.health_ms, 50, 60_000, "50-60000 ms")?;
        let failures = range("failures", a.failures.into(), 1, 100, "1-100")?;
        let stop = range("stop-seconds", a.stop_seconds, 1, 3600, "1-3600 seconds")?;
        Ok(Config {
            root: a.mps_root,
            control: a.mps_control,
            nvml_lib: a.nvml_lib,
            multi_user: a.multi_user,
            health_every: Duration::from_millis(health),
            failures: u32::try_from(failures).unwrap_or(3),
            stop_grace: Duration::from_secs(stop),
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
        args: MpsDaemonArgs,
    }

    fn config(args: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["tessera"];
        argv.extend_from_slice(args);
        Config::try_from(Cli::try_parse_from(argv).unwrap().args)
    }

    #[test]
    fn defaults_match_the_device_plugin_and_the_driver() {
        let c = config(&[]).unwrap();
        assert_eq!(c.root, PathBuf::from("/run/tessera/mps"));
        assert_eq!(c.control, PathBuf::from("nvidia-cuda-mps-control"));
        assert_eq!(c.nvml_lib, PathBuf::from("libnvidia-ml.so.1"));
        assert_eq!(c.multi_user, MultiUser::Auto);
        assert_eq!(c.health_every, Duration::from_secs(2));
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(
            config(&["--mps-root", "mps"]).unwrap_err().to_string(),
            "--mps-root \"mps\" must be an absolute path"
        );
        assert_eq!(
            config(&["--health-ms", "10"]).unwrap_err().to_string(),
            "--health-ms 10 is out of range (50-60000 ms)"
        );
    }
}
