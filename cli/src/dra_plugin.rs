//! `tessera dra-plugin`: loads NVML, connects to the apiserver, runs the DRA kubelet plugin on
//! the kubelet's plugin sockets and serves `/metrics`, `/healthz` and `/readyz`, until SIGTERM
//! or Ctrl-C. The plugin itself lives in tessera-dra-plugin; this module only wires it to the
//! process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tessera_dra_plugin::Plugin;
use tessera_dra_plugin::claims::KubeClaims;
use tessera_dra_plugin::config::{Config, DraPluginArgs};
use tessera_dra_plugin::error::NvmlFailure;
use tessera_dra_plugin::nvml::{Discovered, Gpus, NvmlGpus};
use tessera_dra_plugin::slices::KubeSlices;
use tessera_dra_plugin::state::Shared;

/// Flags of `tessera dra-plugin`.
#[derive(Debug, clap::Args)]
pub struct DraPluginCli {
    #[command(flatten)]
    plugin: DraPluginArgs,
    /// Address serving /metrics, /healthz and /readyz.
    #[arg(long, env = "TESSERA_METRICS_LISTEN", default_value = "0.0.0.0:9404")]
    metrics_listen: SocketAddr,
    /// Kubeconfig file; default: in-cluster, then $KUBECONFIG, then ~/.kube/config.
    #[arg(long, env = "TESSERA_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

/// Runs the DRA plugin until the process is told to stop.
pub fn run(args: DraPluginCli) -> anyhow::Result<()> {
    let config = Config::try_from(args.plugin).context("dra-plugin flags")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(config, args.metrics_listen, args.kubeconfig))
}

async fn serve(
    config: Config,
    metrics_listen: SocketAddr,
    kubeconfig: Option<PathBuf>,
) -> anyhow::Result<()> {
    let client = crate::kube_client::connect(kubeconfig.as_deref()).await?;
    let gpus: Arc<dyn Gpus> = match NvmlGpus::load(&config.nvml_lib) {
        Ok(gpus) => Arc::new(gpus),
        Err(failure) => Arc::new(NoNvml(failure)),
    };
    let claims = Arc::new(KubeClaims::new(client.clone()));
    let slices = Arc::new(KubeSlices::new(client));
    let plugin = Plugin::new(config, gpus, claims, slices).context("dra-plugin")?;
    let mut registry = Registry::default();
    crate::build_info::register(&mut registry, "dra-plugin");
    let registry = Arc::new(registry);
    let shared = Arc::clone(plugin.shared());
    let stopped = crate::serve::stop_on_signal();
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(move || readiness(Arc::clone(&shared))))
        .route(
            "/metrics",
            get(move |headers| crate::serve::metrics_response(Arc::clone(&registry), headers)),
        );
    let http =
        crate::serve::serve_agent_http(metrics_listen, "--metrics-listen", router, stopped.clone())
            .await?;
    plugin.run(stopped).await.context("dra-plugin")?;
    http.await
        .context("metrics server task")?
        .context("metrics server")?;
    Ok(())
}

/// Ready while the kubelet has accepted our registration.
async fn readiness(shared: Arc<Shared>) -> (StatusCode, &'static str) {
    if shared.is_registered() {
        (StatusCode::OK, "ready: registered with the kubelet\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: not registered with the kubelet\n",
        )
    }
}

/// [`Gpus`] when NVML could not be loaded: discovery reports why, so the plugin logs it once
/// and publishes no device, while it still serves the kubelet (unprepare keeps working).
struct NoNvml(NvmlFailure);

impl Gpus for NoNvml {
    fn discover(&self) -> Result<Discovered, NvmlFailure> {
        Err(self.0.clone())
    }

    fn answering(&self) -> Vec<String> {
        Vec::new()
    }
}
