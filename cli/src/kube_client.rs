//! The apiserver client every server subcommand uses: an explicit kubeconfig when given,
//! otherwise kube's inference (in-cluster service account, then `$KUBECONFIG`, then
//! `~/.kube/config`).

use std::path::Path;

use anyhow::Context;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Connects to the apiserver.
pub async fn connect(kubeconfig: Option<&Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("using kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("finding the apiserver (no --kubeconfig, not in a cluster, no KUBECONFIG)")?,
    };
    Client::try_from(config).context("building the apiserver client")
}
