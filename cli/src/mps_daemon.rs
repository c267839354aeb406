//! `tessera mps-daemon`: loads NVML, takes the GPUs behind a supervised MPS control daemon and
//! serves `/healthz`, `/readyz` (200 only while isolation is live) and `/metrics`, until
//! SIGTERM or Ctrl-C. The daemon itself lives in tessera-mps; this module wires it up.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tessera_mps::config::{Config, MpsDaemonArgs};
use tessera_mps::metrics::Metrics;
use tessera_mps::nvml::NvmlModes;
use tokio::sync::watch;

/// Flags of `tessera mps-daemon`.
#[derive(Debug, clap::Args)]
pub struct MpsDaemonCli {
    #[command(flatten)]
    daemon: MpsDaemonArgs,
    /// Address serving /healthz, /readyz and /metrics.
    #[arg(long, env = "TESSERA_METRICS_LISTEN", default_value = "0.0.0.0:9403")]
    metrics_listen: SocketAddr,
}

/// Runs the MPS daemon until the process is told to stop.
pub fn run(args: MpsDaemonCli) -> anyhow::Result<()> {
    let config = Config::try_from(args.daemon).context("mps-daemon flags")?;
    let modes = NvmlModes::load(&config.nvml_lib).context("--nvml-lib")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(config, modes, args.metrics_listen))
}

async fn serve(config: Config, modes: NvmlModes, listen: SocketAddr) -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    crate::build_info::register(&mut registry, "mps-daemon");
    let stopped = crate::serve::stop_on_signal();
    let (ready_tx, ready) = watch::channel(false);
    let registry = Arc::new(registry);
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(move || readyz(ready.clone())))
        .route(
            "/metrics",
            get(move |headers| crate::serve::metrics_response(Arc::clone(&registry), headers)),
        );
    let http =
        crate::serve::serve_agent_http(listen, "--metrics-listen", router, stopped.clone()).await?;
    tessera_mps::run(config, &modes, metrics, ready_tx, stopped)
        .await
        .context("mps-daemon")?;
    http.await.context("http task")?.context("http server")?;
    Ok(())
}

async fn readyz(ready: watch::Receiver<bool>) -> (StatusCode, &'static str) {
    if *ready.borrow() {
        (StatusCode::OK, "ready: MPS isolation is live\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no MPS control daemon answering\n",
        )
    }
}
