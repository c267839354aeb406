//! `tessera ensemble`: the membership controller. Joins the leader election when `--lease` is
//! given (only the leader acts), serves `/metrics`, and keeps every injected ensemble's
//! membership equal to its StatefulSet's replicas until SIGTERM.

use std::sync::atomic::Ordering;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tessera_ensemble::Options;
use tessera_ensemble::metrics::Metrics;
use tessera_ensemble::reconcile::Controller;

/// Runs the controller until the process is asked to stop.
pub fn run(options: Options) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(options))
}

async fn serve(options: Options) -> anyhow::Result<()> {
    let client = crate::kube_client::connect(options.kubeconfig.as_deref()).await?;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    crate::build_info::register(&mut registry, "ensemble");
    let listen = options.metrics_listen;
    let lease = options.lease.clone();
    let controller = Controller::start(client.clone(), options, metrics);
    if let Some(lease) = lease {
        let (namespace, name) = lease
            .split_once('/')
            .with_context(|| format!("--lease {lease:?} is not NAMESPACE/NAME"))?;
        controller.leading.store(false, Ordering::Release);
        let identity = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| format!("tessera-ensemble-{}", std::process::id()));
        let manager = kube_lease_manager::LeaseManagerBuilder::new(client, name)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(15)
            .with_grace(5)
            .build()
            .await
            .context("joining the leader election")?;
        let leading = controller.leading.clone();
        tokio::spawn(async move {
            let (mut verdicts, _task) = manager.watch().await;
            loop {
                let won = *verdicts.borrow_and_update();
                leading.store(won, Ordering::Release);
                tracing::info!(leading = won, "leader election");
                if verdicts.changed().await.is_err() {
                    leading.store(false, Ordering::Release);
                    break;
                }
            }
        });
    }
    let registry = std::sync::Arc::new(registry);
    let ready = controller.ready.clone();
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/readyz",
            axum::routing::get(move || {
                let ready = ready.load(Ordering::Acquire);
                async move {
                    match ready {
                        true => (axum::http::StatusCode::OK, "ready"),
                        false => (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "caches filling",
                        ),
                    }
                }
            }),
        )
        .route(
            "/metrics",
            axum::routing::get(move || {
                let registry = registry.clone();
                async move {
                    let mut text = String::new();
                    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
                    text
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    tokio::select! {
        () = controller.run() => Ok(()),
        r = tokio::signal::ctrl_c() => r.context("waiting for a stop signal"),
    }
}
