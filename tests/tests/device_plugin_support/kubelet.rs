//! A fake kubelet: `Registration` on `kubelet.sock` (dialling the plugin back during `Register`,
//! as the real kubelet does), and a fake PodResources `List`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tessera_device_plugin::api::podresources::pod_resources_lister_server::{
    PodResourcesLister, PodResourcesListerServer,
};
use tessera_device_plugin::api::podresources::{
    AllocatableResourcesRequest, AllocatableResourcesResponse, ContainerDevices,
    ContainerResources, GetPodResourcesRequest, GetPodResourcesResponse, ListPodResourcesRequest,
    ListPodResourcesResponse, PodResources,
};
use tessera_device_plugin::api::v1beta1::device_plugin_client::DevicePluginClient;
use tessera_device_plugin::api::v1beta1::registration_server::{Registration, RegistrationServer};
use tessera_device_plugin::api::v1beta1::{Empty, RegisterRequest};
use tessera_device_plugin::kubelet::unix_channel;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

struct Registrar {
    plugin_dir: PathBuf,
    tx: mpsc::UnboundedSender<RegisterRequest>,
}

#[tonic::async_trait]
impl Registration for Registrar {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        let req = request.into_inner();
        // The real kubelet connects to the plugin before answering; a plugin that registers
        // before it serves fails here.
        let socket = self.plugin_dir.join(&req.endpoint);
        let channel = unix_channel(&socket).await.map_err(|e| {
            Status::failed_precondition(format!("dial back {}: {e}", socket.display()))
        })?;
        DevicePluginClient::new(channel)
            .get_device_plugin_options(Empty {})
            .await?;
        let _ = self.tx.send(req);
        Ok(Response::new(Empty {}))
    }
}

/// A kubelet's registration socket.
pub struct FakeKubelet {
    pub socket: PathBuf,
    plugin_dir: PathBuf,
    registrations: mpsc::UnboundedReceiver<RegisterRequest>,
    stop: Option<oneshot::Sender<()>>,
}

impl FakeKubelet {
    pub fn start(socket: &Path, plugin_dir: &Path) -> Self {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket).unwrap();
        let (tx, registrations) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let service = RegistrationServer::new(Registrar {
            plugin_dir: plugin_dir.to_path_buf(),
            tx,
        });
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                    let _ = stopped.await;
                }),
        );
        Self {
            socket: socket.to_path_buf(),
            plugin_dir: plugin_dir.to_path_buf(),
            registrations,
            stop: Some(stop),
        }
    }

    pub async fn next_registration(&mut self) -> RegisterRequest {
        tokio::time::timeout(super::WAIT, self.registrations.recv())
            .await
            .expect("the plugin registers in time")
            .unwrap()
    }

    /// Registrations received so far that nobody awaited.
    pub fn pending_registrations(&mut self) -> usize {
        let mut n = 0;
        while self.registrations.try_recv().is_ok() {
            n += 1;
        }
        n
    }

    /// What a restarting kubelet does: stop serving, delete every socket in the device plugin
    /// directory (the plugin's included), then serve `kubelet.sock` again. Returns when the new
    /// `kubelet.sock` exists.
    pub fn restart(&mut self) -> std::time::Instant {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        for entry in std::fs::read_dir(&self.plugin_dir).unwrap() {
            let _ = std::fs::remove_file(entry.unwrap().path());
        }
        *self = Self::start(&self.socket.clone(), &self.plugin_dir.clone());
        std::time::Instant::now()
    }
}

/// PodResources answering `List` with what the test sets.
#[derive(Clone, Default)]
pub struct FakePodResources {
    pods: Arc<Mutex<Vec<PodResources>>>,
}

impl FakePodResources {
    pub fn serve(&self, socket: &Path) {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket).unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(PodResourcesListerServer::new(self.clone()))
                .serve_with_incoming(UnixListenerStream::new(listener)),
        );
    }

    /// Sets the pods: `(name, container, resource, device ids)` in namespace `ml`.
    pub fn set(&self, pods: &[(&str, &str, &str, &[String])]) {
        let list = pods
            .iter()
            .map(|(name, container, resource, ids)| PodResources {
                name: (*name).into(),
                namespace: "ml".into(),
                containers: vec![ContainerResources {
                    name: (*container).into(),
                    devices: vec![ContainerDevices {
                        resource_name: (*resource).into(),
                        device_ids: ids.to_vec(),
                        topology: None,
                    }],
                    cpu_ids: vec![],
                    memory: vec![],
                }],
            })
            .collect();
        *self.pods.lock().unwrap() = list;
    }
}

#[tonic::async_trait]
impl PodResourcesLister for FakePodResources {
    async fn list(
        &self,
        _: Request<ListPodResourcesRequest>,
    ) -> Result<Response<ListPodResourcesResponse>, Status> {
        let pod_resources = self.pods.lock().unwrap().clone();
        Ok(Response::new(ListPodResourcesResponse { pod_resources }))
    }

    async fn get_allocatable_resources(
        &self,
        _: Request<AllocatableResourcesRequest>,
    ) -> Result<Response<AllocatableResourcesResponse>, Status> {
        Err(Status::unimplemented("not used by Tessera"))
    }

    async fn get(
        &self,
        _: Request<GetPodResourcesRequest>,
    ) -> Result<Response<GetPodResourcesResponse>, Status> {
        Err(Status::unimplemented("not used by Tessera"))
    }
}
