//! Serves a router over rustls (or plain HTTP) on an already bound listener: HTTP/1.1 and HTTP/2
//! with keep-alive, and [`Limits`] on what one client may hold — a cap on connections (the
//! listener is not polled at the cap), deadlines for the handshake, the first request, headers,
//! each request and idle connections, and a 413 for a declared body over the limit (see
//! `conn`). On the shutdown signal it stops accepting, lets in-flight requests finish
//! (connections are told to close after them) and gives up after the drain deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::budget::Budget;
use crate::conn::{self, Shared};
use crate::limits::{HEADERS, Limits};
use crate::refusals::Reason;

/// Longest a client may take to finish the TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Most HTTP/2 streams one connection may have open (hyper's default is 200). Go's HTTP/2
/// client, the apiserver's and kube-scheduler's, opens another connection past it.
const MAX_STREAMS: u32 = 32;
/// HTTP/2 flow-control window of one stream (hyper's default is 1 MiB).
const STREAM_WINDOW: u32 = 32 << 10;
/// HTTP/2 flow-control window of one connection: room for every stream's window, so the unread
/// data of streams waiting for the body budget never stops the streams being read (with a
/// smaller one, those could wait on each other until the request deadline).
const CONNECTION_WINDOW: u32 = MAX_STREAMS * STREAM_WINDOW;
/// Pause after a failed accept (out of descriptors and the like) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `app` on `listener` with `tls` until `shutdown` resolves, then drains for at most
/// `drain`.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
    limits: Limits,
) {
    let acceptor = Some(TlsAcceptor::from(tls));
    serve_with(listener, acceptor, app, shutdown, drain, limits).await;
}

/// Serves `app` on `listener` over plain HTTP, with the same limits and shutdown as
/// [`serve_tls`].
pub async fn serve_plain(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
    limits: Limits,
) {
    serve_with(listener, None, app, shutdown, drain, limits).await;
}

async fn serve_with(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
    limits: Limits,
) {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let budget = Budget::new(limits.max_buffered_bytes);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADERS);
    // What one HTTP/2 connection may have sent and not yet read, whatever its streams: bodies
    // are read only once reserved from the budget, so unread data waits in these windows.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW);
    tokio::pin!(shutdown);
    let mut failures: u64 = 0;
    loop {
        // Back-pressure: at the cap, the next connection is not accepted until one closes.
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                limits.refusals.count(Reason::ConnectionCap);
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // One line when accepting starts failing and one when it recovers, not one
                    // per attempt.
                    if failures == 0 {
                        warn!(error = %e, "accept failed; retrying every 50 ms");
                    }
                    failures += 1;
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if failures > 0 {
            info!(failures, "accepting again");
            failures = 0;
        }
        let _ = tcp.set_nodelay(true);
        let (acceptor, app, builder) = (acceptor.clone(), app.clone(), builder.clone());
        let limits = limits.clone();
        let budget = budget.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let result = match acceptor {
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            limits.refusals.count(Reason::HandshakeFailed);
                            return debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            limits.refusals.count(Reason::HandshakeTimeout);
                            return debug!(%peer, "TLS handshake timed out");
                        }
                    };
                    let verified = stream.get_ref().1.peer_certificates().is_some();
                    let shared = Shared {
                        limits: limits.clone(),
                        budget,
                        verified,
                    };
                    conn::serve(stream, &builder, app, shared, stop).await
                }
                None => {
                    let shared = Shared {
                        limits: limits.clone(),
                        budget,
                        verified: false,
                    };
                    conn::serve(tcp, &builder, app, shared, stop).await
                }
            };
            if let Err(e) = result {
                limits.refusals.count(Reason::ConnectionError);
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    info!("shutting down: draining open connections");
    let _ = stop_tx.send(true);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    tokio::select! {
        _ = slots.acquire_many(all) => info!("all connections drained"),
        () = tokio::time::sleep(drain) => warn!(?drain, "drain deadline passed; closing"),
    }
}
