//! `tessera extender`: connects to the apiserver, joins the leader election, starts the node
//! and pod watches, releases reservations that time out, refreshes the request mix, and serves
//! the verbs until SIGTERM; then it stops leading and frees the Lease.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tessera_extender::api_binder::ApiBinder;
use tessera_extender::leader::{self, Leadership};
use tessera_extender::watch::{self, WatchConfig};
use tessera_extender::{ExtenderState, Options, router};
use tessera_extender::{cert_sync, stale};

use crate::serve;

/// How often reservations are checked for their deadline.
const EXPIRY_PERIOD: Duration = Duration::from_secs(1);
/// How often the typical request mix is recomputed from what pods hold.
const MIX_PERIOD: Duration = Duration::from_secs(30);

/// Runs the extender until the process is asked to stop.
pub fn run(options: Options) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve_extender(options))
}

async fn serve_extender(options: Options) -> anyhow::Result<()> {
    let client = crate::kube_client::connect(options.kubeconfig.as_deref()).await?;
    if let Some(managed) = options.self_managed() {
        let files = cert_sync::Files {
            cert: options
                .tls_cert
                .clone()
                .context("--self-managed-certs needs --tls-cert")?,
            key: options
                .tls_key
                .clone()
                .context("--self-managed-certs needs --tls-key")?,
            client_ca: options
                .client_ca
                .clone()
                .context("--self-managed-certs needs --client-ca")?,
        };
        cert_sync::ensure(&client, &managed, &files)
            .await
            .context("--self-managed-certs")?;
        tokio::spawn(cert_sync::run(client.clone(), managed, files));
    }
    if options.tls_cert.is_some() && options.client_ca.is_none() {
        tracing::warn!(
            "no --client-ca: any client that reaches the extender can filter and bind pods"
        );
    }
    let identity = leader::identity();
    let lease = options.lease();
    let leadership = Arc::new(match &lease {
        Some(_) => Leadership::elected(identity.clone()),
        None => Leadership::single(identity.clone()),
    });
    let binder = ApiBinder::new(client.clone()).with_fence(leadership.clone());
    let state = Arc::new(
        ExtenderState::new(options.config(), Arc::new(binder))
            .with_leadership(leadership.clone())
            .with_root_metrics(|r| crate::build_info::register(r, "extender")),
    );
    let election = lease.map(|lease| {
        tracing::info!(%identity, lease = %lease.name, namespace = %lease.namespace, "joining the leader election");
        leader::start(client.clone(), leadership, lease)
    });
    let watch_config = WatchConfig {
        scheduler_name: options.scheduler_name.clone(),
    };
    tokio::spawn(watch::run(client.clone(), state.clone(), watch_config));
    tokio::spawn(expire_reservations(client, state.clone()));
    tokio::spawn(refresh_mix(state.clone()));
    tracing::info!(listen = %options.listen, policy = options.policy.name(), "extender starting");
    let limits = tessera_serve::Limits {
        max_connections: options.max_connections as usize,
        idle: options.idle_timeout,
        request: options.request_timeout,
        max_body_bytes: tessera_extender::routes::MAX_BODY_BYTES as u64,
        // Two full-size bodies (5,000 whole Nodes each) at once, whatever the connections
        // and streams; nodeCacheCapable requests are a small fraction of that.
        max_buffered_bytes: 2 * tessera_extender::routes::MAX_BODY_BYTES as u64,
        refusals: state.metrics().refusals(),
        ..tessera_serve::Limits::default()
    };
    let tls = serve::TlsFiles::from_flags(options.tls_cert, options.tls_key)
        .map(|files| files.with_client_ca(options.client_ca));
    let not_after = state.metrics().cert_not_after();
    let served = serve::serve(options.listen, router(state), tls, limits, not_after).await;
    // In-flight binds have drained: stop leading and free the Lease for a standby.
    if let Some(election) = election {
        election.step_down().await;
    }
    served
}

async fn expire_reservations(client: kube::Client, state: Arc<ExtenderState>) {
    let mut tick = tokio::time::interval(EXPIRY_PERIOD);
    loop {
        tick.tick().await;
        for pod in state.expire_reservations(state.now_ms()) {
            tracing::warn!(
                pod,
                "reservation expired: the pod never showed up bound; shares released"
            );
            // An assignment left behind is removed by the leader (the watch sends no event).
            stale::recheck(&client, state.clone(), pod);
        }
    }
}

async fn refresh_mix(state: Arc<ExtenderState>) {
    let mut tick = tokio::time::interval(MIX_PERIOD);
    loop {
        tick.tick().await;
        if state.is_ready() {
            state.update(|c| c.refresh_mix());
            state.dra().update(|c| c.refresh_mix());
        }
    }
}
