//! The `DevicePlugin` gRPC service the kubelet calls on our socket. Each handler decodes, asks
//! `tessera_core::plugin` for the decision, encodes and records telemetry (STYLE.md 2.1).

use std::sync::Arc;
use std::time::Instant;

use tessera_core::keys;
use tessera_core::plugin::{allocate, env, mps, reconcile, slots};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::api::v1beta1::device_plugin_server::DevicePlugin;
use crate::api::v1beta1::{
    AllocateRequest, AllocateResponse, ContainerAllocateResponse,
    ContainerPreferredAllocationResponse, Device, DevicePluginOptions, Empty, ListAndWatchResponse,
    Mount, PreStartContainerRequest, PreStartContainerResponse, PreferredAllocationRequest,
    PreferredAllocationResponse,
};
use crate::error::PluginError;
use crate::metrics::ReasonLabel;
use crate::state::{Served, Shared};

/// Health strings of the device plugin API.
const HEALTHY: &str = "Healthy";
const UNHEALTHY: &str = "Unhealthy";

/// The service on one serving generation of our socket. `stop` ends every ListAndWatch stream
/// when that generation is torn down (the kubelet removed the socket, or shutdown), so a
/// graceful server shutdown does not wait for streams that never end.
pub struct Service {
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
}

impl Service {
    /// A service over `shared`, whose streams end when `stop` turns true.
    pub fn new(shared: Arc<Shared>, stop: watch::Receiver<bool>) -> Self {
        Self { shared, stop }
    }

    /// The options we register with.
    pub fn options() -> DevicePluginOptions {
        DevicePluginOptions {
            pre_start_required: false,
            get_preferred_allocation_available: true,
        }
    }

    async fn allocate_one(&self, ids: &[String]) -> Result<ContainerAllocateResponse, PluginError> {
        let shared = &self.shared;
        let (node, per_gpu) = (&shared.config.node_name, shared.config.slots_per_gpu);
        let slot_gpus = slots::gpus_of(ids, &shared.gpus(), per_gpu)?;
        let mut pods = shared.pods.on_node()?;
        let served = shared.served_containers();
        let m = match allocate::match_request(node, &pods, ids.len(), ids, &slot_gpus, &served) {
            Ok(m) => m,
            Err(_) => {
                // The pod was bound a moment ago and its watch event may not be here yet.
                pods = shared.pods.refresh().await?;
                allocate::match_request(node, &pods, ids.len(), ids, &slot_gpus, &served)?
            }
        };
        let pod_key = format!("{}/{}", m.namespace, m.name);
        tracing::Span::current().record("pod", pod_key.as_str());
        // Never a GPU the node lacks or cannot isolate now: refuse before recording anything.
        let root = shared.config.mps_root.as_deref();
        let client = mps::client_for(node, &m.shares, &shared.gpus(), root).map_err(|reason| {
            PluginError::Refused {
                pod: pod_key.clone(),
                container: m.container.clone(),
                reason,
            }
        })?;
        let mut envs = env::container_env(&m.shares, &format!("{pod_key}/{}", m.container));
        let mounts = client.map(|c| {
            envs.extend(c.env);
            c.mounts.into_iter().map(mount).collect()
        });
        shared.record(
            reconcile::record_key(ids),
            Served {
                pod: m.identity.clone(),
                container: m.container.clone(),
                shares: m.shares.clone(),
                at: Instant::now(),
            },
        );
        let mut served = served;
        served.push((m.identity.clone(), m.container.clone()));
        let assignment = pods
            .iter()
            .find(|p| p.identity() == m.identity)
            .and_then(|p| p.assignment.as_ref());
        if assignment.is_some_and(|a| allocate::fully_served(a, &m.identity, &served)) {
            // A failed write leaves bind-phase allocating; the served record keeps this container
            // from matching again and reconciliation retries the write.
            if let Err(e) = shared.pods.set_allocated(&m.namespace, &m.name).await {
                tracing::warn!(pod = %pod_key, error = %e, "could not set bind-phase allocated; will retry");
            }
        }
        tracing::info!(pod = %pod_key, container = %m.container, gpus = %envs[env::NVIDIA_VISIBLE_DEVICES], "allocated");
        Ok(ContainerAllocateResponse {
            envs: envs.into_iter().collect(),
            mounts: mounts.unwrap_or_default(),
            ..Default::default()
        })
    }
}

fn mount(m: mps::MountSpec) -> Mount {
    Mount {
        container_path: m.container_path.display().to_string(),
        host_path: m.host_path.display().to_string(),
        read_only: m.read_only,
    }
}

fn device_list(list: &[slots::Slot]) -> ListAndWatchResponse {
    let devices = list
        .iter()
        .map(|s| Device {
            id: s.id.clone(),
            health: if s.healthy { HEALTHY } else { UNHEALTHY }.to_string(),
            topology: None,
        })
        .collect();
    ListAndWatchResponse { devices }
}

#[tonic::async_trait]
impl DevicePlugin for Service {
    async fn get_device_plugin_options(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<DevicePluginOptions>, Status> {
        Ok(Response::new(Self::options()))
    }

    type ListAndWatchStream = ReceiverStream<Result<ListAndWatchResponse, Status>>;

    async fn list_and_watch(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListAndWatchStream>, Status> {
        let mut slots = self.shared.subscribe();
        let mut stop = self.stop.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let list = device_list(&slots.borrow_and_update());
                if tx.send(Ok(list)).await.is_err() {
                    return;
                }
                tokio::select! {
                    changed = slots.changed() => if changed.is_err() { return },
                    () = crate::state::stopped(&mut stop) => return,
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_preferred_allocation(
        &self,
        request: Request<PreferredAllocationRequest>,
    ) -> Result<Response<PreferredAllocationResponse>, Status> {
        let shared = &self.shared;
        let mut pods = shared.pods.on_node().map_err(Status::from)?;
        let mut refreshed = false;
        let served = shared.served_containers();
        let gpus = shared.gpus();
        let mut container_responses = Vec::new();
        for c in &request.get_ref().container_requests {
            let size = usize::try_from(c.allocation_size).unwrap_or(0);
            let must = &c.must_include_device_i_ds;
            let slot_gpus = slots::gpus_of(must, &gpus, shared.config.slots_per_gpu)
                .map_err(PluginError::from)?;
            let node = &shared.config.node_name;
            let mut m = allocate::match_request(node, &pods, size, must, &slot_gpus, &served).ok();
            if m.is_none() && !refreshed {
                // As in Allocate: a just-bound pod may not be in the cache yet.
                pods = shared.pods.refresh().await.map_err(Status::from)?;
                refreshed = true;
                m = allocate::match_request(node, &pods, size, must, &slot_gpus, &served).ok();
            }
            let device_i_ds =
                allocate::preferred_slots(m.as_ref(), &c.available_device_i_ds, must, size);
            tracing::debug!(pod = ?m.as_ref().map(|m| format!("{}/{}", m.namespace, m.name)), slots = ?device_i_ds, "preferred allocation");
            container_responses.push(ContainerPreferredAllocationResponse { device_i_ds });
        }
        Ok(Response::new(PreferredAllocationResponse {
            container_responses,
        }))
    }

    async fn allocate(
        &self,
        request: Request<AllocateRequest>,
    ) -> Result<Response<AllocateResponse>, Status> {
        let started = Instant::now();
        let span = tracing::info_span!(
            "rpc",
            rpc = "Allocate",
            resource = keys::RESOURCE_GPU,
            slots = tracing::field::Empty,
            pod = tracing::field::Empty
        );
        let result = async {
            // One Allocate at a time: matching reads the served set and then extends it.
            let _guard = self.shared.allocate_lock.lock().await;
            let mut container_responses = Vec::new();
            for c in &request.get_ref().container_requests {
                tracing::Span::current().record("slots", tracing::field::debug(&c.devices_ids));
                container_responses.push(self.allocate_one(&c.devices_ids).await?);
            }
            Ok::<_, PluginError>(AllocateResponse {
                container_responses,
            })
        }
        .instrument(span.clone())
        .await;
        self.shared
            .metrics
            .allocate_duration
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(r) => Ok(Response::new(r)),
            Err(e) => {
                let reason = e.kind().to_string();
                self.shared
                    .metrics
                    .allocate_errors
                    .get_or_create(&ReasonLabel { reason })
                    .inc();
                span.in_scope(|| tracing::warn!(error = %e, "allocate failed"));
                Err(e.into())
            }
        }
    }

    async fn pre_start_container(
        &self,
        _: Request<PreStartContainerRequest>,
    ) -> Result<Response<PreStartContainerResponse>, Status> {
        Ok(Response::new(PreStartContainerResponse {}))
    }
}
