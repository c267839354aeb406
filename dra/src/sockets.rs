//! Our two sockets' lifecycle: the DRA service socket in `<kubelet-root>/plugins/<driver>/`
//! first (the kubelet dials it as soon as it reads our registration), then the registration
//! socket in `<kubelet-root>/plugins_registry/` that the plugin watcher finds.
//!
//! Either socket removed (a cleaned directory, a kubelet reinstall) is served again, watched by
//! inode every [`WATCH_EVERY`]; a refused registration makes the registration socket anew
//! after [`crate::registration::RETRY_AFTER`]. On shutdown both are removed, which also tells
//! the plugin watcher we are gone.
//!
//! Every accepted connection goes through [`AuthorityShim`] before tonic sees it: the kubelet
//! names our sockets by path in `:authority`, which h2 would refuse (see [`crate::authority`]).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::{Channel, Endpoint, Server, Uri};

use crate::api::dra::dra_plugin_server::DraPluginServer;
use crate::api::pluginregistration::registration_server::RegistrationServer;
use crate::authority::AuthorityShim;
use crate::error::StartError;
use crate::registration::{RETRY_AFTER, RegistrationService};
use crate::service::Service;
use crate::state::{Shared, stopped};

/// How often our sockets are checked for removal.
pub const WATCH_EVERY: Duration = Duration::from_millis(200);

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

/// One served socket: its path, inode and the switch that stops its server.
struct Served {
    path: PathBuf,
    inode: u64,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    fn gone(&self) -> bool {
        current_inode(&self.path) != Some(self.inode)
    }

    async fn close(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
        if current_inode(&self.path) == Some(self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Serves both sockets until `shutdown` turns true; then removes them.
pub async fn run(
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), StartError> {
    let (refused_tx, mut refused) = mpsc::channel(4);
    let mut dra = serve_dra(&shared)?;
    let mut reg = serve_registration(&shared, refused_tx.clone())?;
    let mut tick = tokio::time::interval(WATCH_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if dra.gone() {
                    tracing::warn!(socket = %dra.path.display(), "DRA socket removed; serving it again");
                    dra.close().await;
                    dra = serve_dra(&shared)?;
                }
                if reg.gone() {
                    tracing::warn!(socket = %reg.path.display(), "registration socket removed; registering again");
                    reg.close().await;
                    reg = serve_registration(&shared, refused_tx.clone())?;
                }
            }
            Some(_) = refused.recv() => {
                tokio::select! {
                    () = tokio::time::sleep(RETRY_AFTER) => {}
                    () = stopped(&mut shutdown) => {}
                }
                if !*shutdown.borrow() && !shared.is_registered() {
                    reg.close().await;
                    reg = serve_registration(&shared, refused_tx.clone())?;
                }
            }
            () = stopped(&mut shutdown) => {
                shared.set_registered(false);
                reg.close().await;
                dra.close().await;
                return Ok(());
            }
        }
    }
}

fn serve_dra(shared: &Arc<Shared>) -> Result<Served, StartError> {
    let service = DraPluginServer::new(Service::new(Arc::clone(shared)));
    serve(&shared.config.dra_socket(), |stop, incoming| {
        Box::pin(
            Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, stop),
        )
    })
}

fn serve_registration(
    shared: &Arc<Shared>,
    refused: mpsc::Sender<String>,
) -> Result<Served, StartError> {
    shared.set_registered(false);
    let service = RegistrationServer::new(RegistrationService::new(Arc::clone(shared), refused));
    serve(&shared.config.registration_socket(), |stop, incoming| {
        Box::pin(
            Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, stop),
        )
    })
}

type ServerFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), tonic::transport::Error>> + Send>,
>;

/// The connections a server is handed: those accepted, each behind the `:authority` shim.
type Incoming = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = std::io::Result<AuthorityShim<UnixStream>>> + Send>,
>;

/// Binds `path` (removing a socket left by an earlier run) and spawns the server `make` builds.
fn serve(
    path: &Path,
    make: impl FnOnce(
        std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
        Incoming,
    ) -> ServerFuture,
) -> Result<Served, StartError> {
    let err = |what| {
        let path = path.display().to_string();
        move |source| StartError::Io { what, path, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err("creating the directory of"))?;
    }
    crate::files::remove(path).map_err(err("removing the stale socket"))?;
    let listener = UnixListener::bind(path).map_err(err("binding"))?;
    let inode = std::fs::metadata(path).map_err(err("reading"))?.ino();
    let (stop, mut stopped_rx) = watch::channel(false);
    let signal = Box::pin(async move {
        let _ = stopped_rx.wait_for(|s| *s).await;
    });
    let incoming = UnixListenerStream::new(listener).map(|conn| conn.map(AuthorityShim::new));
    let server = make(signal, Box::pin(incoming));
    let shown = path.display().to_string();
    let task = tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(socket = %shown, error = %e, "gRPC server failed");
        }
    });
    tracing::info!(socket = %path.display(), "serving");
    Ok(Served {
        path: path.to_path_buf(),
        inode,
        stop,
        task,
    })
}

fn current_inode(path: &Path) -> Option<u64> {
    std::fs::symlink_metadata(path).ok().map(|m| m.ino())
}
