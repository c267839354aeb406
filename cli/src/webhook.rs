//! `tessera webhook`: loads the profiles file (or watches InjectionProfiles in the cluster) and
//! the serving certificate, then serves `/mutate` over HTTPS until SIGTERM, reloading the
//! certificate and the profiles file when they change.

use std::sync::Arc;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tessera_webhook::{Config, Webhook, WebhookArgs};
use tessera_webhook::{cert_sync, peers, templates, watch};

use crate::serve;

/// Runs the webhook until the process is asked to stop.
pub fn run(args: WebhookArgs) -> anyhow::Result<()> {
    let config = Config::try_from(args).context("webhook flags")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve_webhook(config))
}

/// The apiserver client, when the webhook has one. Watching InjectionProfiles and self-managed
/// certificates need it. With `--profiles FILE` the cluster is optional: it is used when named
/// (`--kubeconfig`, an error if unusable) or when running in a pod (a warning if unusable), for
/// the peer-list controller.
async fn cluster_client(config: &Config) -> anyhow::Result<Option<kube::Client>> {
    let required = config.profiles.is_none() || config.self_managed.is_some();
    if required || config.kubeconfig.is_some() {
        return crate::kube_client::connect(config.kubeconfig.as_deref())
            .await
            .map(Some);
    }
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() {
        return Ok(None);
    }
    match crate::kube_client::connect(None).await {
        Ok(client) => Ok(Some(client)),
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "in a pod, but the apiserver is not usable"
            );
            Ok(None)
        }
    }
}

async fn serve_webhook(config: Config) -> anyhow::Result<()> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = cluster_client(&config).await?;
    if let (Some(client), Some(managed)) = (&client, &config.self_managed) {
        let files = (config.tls_cert.as_path(), config.tls_key.as_path());
        cert_sync::ensure(client, managed, files)
            .await
            .context("--self-managed-certs")?;
        let (c, k) = (config.tls_cert.clone(), config.tls_key.clone());
        tokio::spawn(cert_sync::run(client.clone(), managed.clone(), c, k));
    }
    let mut registry = Registry::default();
    crate::build_info::register(&mut registry, "webhook");
    let mut webhook = Webhook::new(config.clone(), provider, &mut registry).with_context(|| {
        format!(
            "--tls-cert {} --tls-key {}",
            config.tls_cert.display(),
            config.tls_key.display()
        )
    })?;
    match &config.profiles {
        // Reloaded by the server when the file changes.
        Some(path) => webhook
            .load_profiles_file()
            .with_context(|| format!("--profiles {}", path.display()))?,
        None => {
            // Ready once the first list of InjectionProfiles has arrived.
            let client = client
                .clone()
                .context("a kube client for the InjectionProfile watch")?;
            tokio::spawn(watch::run(client, webhook.state.clone()));
        }
    }
    // Peer lists, and the replicas identities are rendered with, come from the cluster's
    // StatefulSets whichever way the profiles are given.
    match client {
        Some(client) => {
            let domain = config.admission.cluster_domain.clone();
            tokio::spawn(peers::run(client.clone(), webhook.state.clone(), domain));
            // Pods `/mutate-dra` rewrote name ResourceClaimTemplates that admission cannot make.
            tokio::spawn(templates::run(client));
        }
        None => tracing::warn!(
            "no cluster: peer-list ConfigMaps and DRA claim templates are not kept, and replicas \
             come from the profiles"
        ),
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("--listen {}", config.listen))?;
    tracing::info!(listen = %config.listen, "webhook serving");
    webhook
        .serve(listener, Arc::new(registry), serve::shutdown_signal())
        .await;
    Ok(())
}
