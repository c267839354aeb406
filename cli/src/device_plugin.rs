//! `tessera device-plugin`: loads NVML, connects to the apiserver, runs the device plugin on the
//! kubelet's socket and serves `/metrics`, `/healthz` and `/readyz`, until SIGTERM or Ctrl-C. The plugin
//! itself lives in tessera-device-plugin; this module only wires it to the process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tessera_device_plugin::Plugin;
use tessera_device_plugin::config::{Config, DevicePluginArgs};
use tessera_device_plugin::metrics::Metrics;
use tessera_device_plugin::nvml::{Gpus, NoNvml, NvmlGpus};
use tessera_device_plugin::pods::KubePods;

/// Flags of `tessera device-plugin`.
#[derive(Debug, clap::Args)]
pub struct DevicePluginCli {
    #[command(flatten)]
    plugin: DevicePluginArgs,
    /// Address serving /metrics, /healthz and /readyz.
    #[arg(long, env = "TESSERA_METRICS_LISTEN", default_value = "0.0.0.0:9402")]
    metrics_listen: SocketAddr,
    /// Kubeconfig file; default: in-cluster, then $KUBECONFIG, then ~/.kube/config.
    #[arg(long, env = "TESSERA_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

/// Runs the device plugin until the process is told to stop.
pub fn run(args: DevicePluginCli) -> anyhow::Result<()> {
    let config = Config::try_from(args.plugin).context("device plugin flags")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(config, args.metrics_listen, args.kubeconfig))
}

async fn serve(
    config: Config,
    metrics_listen: SocketAddr,
    kubeconfig: Option<PathBuf>,
) -> anyhow::Result<()> {
    let client = crate::kube_client::connect(kubeconfig.as_deref()).await?;
    tracing::info!(node = %config.node_name, "waiting for the pod cache of this node");
    let kube = Arc::new(KubePods::start(client, &config.node_name).await);
    let gpus: Arc<dyn Gpus> = match NvmlGpus::load(&config.nvml_lib) {
        Ok(gpus) => Arc::new(gpus),
        Err(failure) => Arc::new(NoNvml(failure)),
    };
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    crate::build_info::register(&mut registry, "device-plugin");
    let plugin = Plugin::new(config, gpus, kube.clone(), kube, metrics);
    let stopped = crate::serve::stop_on_signal();
    let registry = Arc::new(registry);
    let readiness = Readiness::of(&plugin);
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(move || readiness.clone().answer()))
        .route(
            "/metrics",
            get(move |headers| crate::serve::metrics_response(Arc::clone(&registry), headers)),
        );
    let http =
        crate::serve::serve_agent_http(metrics_listen, "--metrics-listen", router, stopped.clone())
            .await?;
    plugin.run(stopped).await.context("device plugin")?;
    http.await
        .context("metrics server task")?
        .context("metrics server")?;
    Ok(())
}

/// What `/readyz` answers: ready while the kubelet knows our socket; never without a GPU, so a
/// node whose driver is missing shows as a not-ready pod rather than a silent one; never while
/// another device plugin advertises the node's GPUs (the body names the resource).
#[derive(Clone)]
enum Readiness {
    Gpus(Arc<tessera_device_plugin::state::Shared>),
    NoGpu(String),
}

impl Readiness {
    fn of(plugin: &Plugin) -> Self {
        match (plugin.shared(), plugin.unavailable()) {
            (Some(shared), _) => Readiness::Gpus(Arc::clone(shared)),
            (None, why) => Readiness::NoGpu(why.map(ToString::to_string).unwrap_or_default()),
        }
    }

    async fn answer(self) -> (StatusCode, String) {
        match self {
            Readiness::Gpus(shared) => match shared.readiness() {
                Ok(why) => (StatusCode::OK, format!("ready: {why}\n")),
                Err(why) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {why}\n"),
                ),
            },
            Readiness::NoGpu(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: no GPU to offer: {why}\n"),
            ),
        }
    }
}
