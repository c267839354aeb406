//! The apiserver client every server subcommand uses: an explicit kubeconfig when given,
//! otherwise kube's inference (in-cluster service account, then `$KUBECONFIG`, then
//! `~/.kube/config`).

use std::path::Path;

use anyhow::Context;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Connects to the apiserver.
pub async fn connect(kubeconfig: Option<&Path>) -> anyhow::Result<Client> {
    connect_to(kubeconfig, None).await
}

/// Connects to the apiserver, through kubeconfig context `context` when given (kubectl's
/// `--context`: from `kubeconfig`, else `$KUBECONFIG`, else `~/.kube/config`).
pub async fn connect_to(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> anyhow::Result<Client> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    let config = match (kubeconfig, context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .with_context(|| format!("using kubeconfig {}", path.display()))?
        }
        (None, Some(context)) => kube::Config::from_kubeconfig(&options)
            .await
            .with_context(|| format!("using kubeconfig context {context:?}"))?,
        (None, None) => kube::Config::infer()
            .await
            .context("finding the apiserver (no --kubeconfig, not in a cluster, no KUBECONFIG)")?,
    };
    Client::try_from(config).context("building the apiserver client")
}
