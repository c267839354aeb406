//! `tessera ensemble`'s command line.

use std::path::PathBuf;
use std::time::Duration;

/// Options of the membership controller.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Kubeconfig file; in a pod the service account is used.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// How often every ensemble is looked at, in seconds.
    #[arg(long, default_value = "3", value_parser = seconds)]
    pub period: Duration,
    /// Longest a product command may run, in seconds.
    #[arg(long, default_value = "30", value_parser = seconds)]
    pub command_timeout: Duration,
    /// Cluster DNS domain of the members' stable names.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Lease for the leader election (`NAMESPACE/NAME`); without it this replica acts alone.
    #[arg(long)]
    pub lease: Option<String>,
    /// Address of `/metrics`.
    #[arg(long, default_value = "0.0.0.0:9464")]
    pub metrics_listen: std::net::SocketAddr,
}

fn seconds(text: &str) -> Result<Duration, String> {
    let n: u64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number of seconds"))?;
    if n == 0 {
        return Err("must be at least 1 second".into());
    }
    Ok(Duration::from_secs(n))
}
