//! Our socket's lifecycle with the kubelet: remove a stale socket, serve, then register (the
//! kubelet dials back during `Register`, so we must already serve), and start over when our
//! socket disappears.
//!
//! A restarting kubelet deletes every socket in the device plugin directory, ours included, and
//! then re-creates `kubelet.sock`. Watching our own socket (by inode, polled every
//! [`WATCH_EVERY`]) catches that whichever order the kubelet does it in; `Register` is retried
//! every [`REGISTER_RETRY`] until `kubelet.sock` answers, so re-registration follows the new
//! kubelet within a fraction of a second. On shutdown the socket is removed.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tessera_core::keys;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::{Channel, Endpoint, Server, Uri};

use crate::api::v1beta1::RegisterRequest;
use crate::api::v1beta1::device_plugin_server::DevicePluginServer;
use crate::api::v1beta1::registration_client::RegistrationClient;
use crate::service::Service;
use crate::state::Shared;

/// How often our socket is checked for removal.
pub const WATCH_EVERY: Duration = Duration::from_millis(50);
/// Pause between failed `Register` attempts.
pub const REGISTER_RETRY: Duration = Duration::from_millis(100);
/// How long a torn-down server may drain before it is aborted.
const DRAIN: Duration = Duration::from_secs(2);
/// The device plugin API version we speak.
pub const API_VERSION: &str = "v1beta1";

/// Failure to serve our socket.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve the device plugin socket {path:?}: {source}")]
pub struct ServeError {
    /// Socket path.
    pub path: PathBuf,
    /// Cause.
    #[source]
    pub source: std::io::Error,
}

/// A gRPC channel over a unix socket (the URI is required by tonic and ignored).
pub async fn unix_channel(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path = path.to_path_buf();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
}

/// Serves, registers and re-registers until `shutdown` turns true; then removes our socket.
pub async fn run(
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let path = shared.config.socket_path();
    loop {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (server, inode) = serve(&shared, &path, stop_rx)?;
        let registered = tokio::select! {
            r = register_until_ok(&shared, &path, inode) => r,
            () = crate::state::stopped(&mut shutdown) => false,
        };
        shared.set_registered(registered);
        if registered {
            tokio::select! {
                () = socket_gone(&path, inode) => {
                    tracing::warn!(socket = %path.display(), "our socket was removed (kubelet restart?); serving and registering again");
                }
                () = crate::state::stopped(&mut shutdown) => {}
            }
        }
        shared.set_registered(false);
        let _ = stop_tx.send(true);
        let drain = drain(server);
        if *shutdown.borrow() {
            drain.await;
            if current_inode(&path) == Some(inode) {
                let _ = std::fs::remove_file(&path);
            }
            return Ok(());
        }
        // The old server drains in the background: re-registration must not wait for it.
        tokio::spawn(drain);
    }
}

/// Waits up to [`DRAIN`] for a stopped server to finish, then aborts it.
async fn drain(server: tokio::task::JoinHandle<()>) {
    let abort = server.abort_handle();
    if tokio::time::timeout(DRAIN, server).await.is_err() {
        abort.abort();
        tracing::warn!("device plugin server did not drain in time; aborted");
    }
}

fn serve(
    shared: &Arc<Shared>,
    path: &Path,
    stop: watch::Receiver<bool>,
) -> Result<(tokio::task::JoinHandle<()>, u64), ServeError> {
    let err = |source| ServeError {
        path: path.to_path_buf(),
        source,
    };
    // A socket left by an earlier run would make bind fail.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    let inode = std::fs::metadata(path).map_err(err)?.ino();
    let service = DevicePluginServer::new(Service::new(Arc::clone(shared), stop.clone()));
    let mut stop = stop;
    let server = Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
            let _ = stop.wait_for(|s| *s).await;
        });
    let handle = tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "device plugin server failed");
        }
    });
    tracing::info!(socket = %path.display(), "serving the device plugin API");
    Ok((handle, inode))
}

/// Registers until it succeeds; false if our socket vanished meanwhile.
async fn register_until_ok(shared: &Shared, path: &Path, inode: u64) -> bool {
    let mut failures = 0u32;
    loop {
        if current_inode(path) != Some(inode) {
            return false;
        }
        match register(shared).await {
            Ok(()) => {
                shared.metrics.registrations.inc();
                tracing::info!(kubelet = %shared.config.kubelet_socket.display(), resource = keys::RESOURCE_GPU, "registered with the kubelet");
                return true;
            }
            Err(e) => {
                failures += 1;
                // Log the first failure and then every ~10 s, not every 100 ms.
                if failures == 1 || failures.is_multiple_of(100) {
                    tracing::warn!(kubelet = %shared.config.kubelet_socket.display(), error = %e, failures, "registration failed; retrying");
                }
                tokio::time::sleep(REGISTER_RETRY).await;
            }
        }
    }
}

/// One `Register` call on the kubelet's socket.
pub async fn register(shared: &Shared) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let channel = unix_channel(&shared.config.kubelet_socket).await?;
    let mut client = RegistrationClient::new(channel);
    client
        .register(RegisterRequest {
            version: API_VERSION.to_string(),
            endpoint: shared.config.socket_name.clone(),
            resource_name: keys::RESOURCE_GPU.to_string(),
            options: Some(Service::options()),
        })
        .await?;
    Ok(())
}

fn current_inode(path: &Path) -> Option<u64> {
    std::fs::symlink_metadata(path).ok().map(|m| m.ino())
}

async fn socket_gone(path: &Path, inode: u64) {
    let mut tick = tokio::time::interval(WATCH_EVERY);
    loop {
        tick.tick().await;
        if current_inode(path) != Some(inode) {
            return;
        }
    }
}
