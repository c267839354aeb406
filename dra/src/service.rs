//! The `DRAPlugin` gRPC service (DRA kubelet API v1) on our socket. Each claim of a request is
//! prepared or unprepared on its own (`prepare`); its failure is its `error`, so one bad claim
//! never fails the others, and the RPC itself always succeeds.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::api::dra::dra_plugin_server::DraPlugin;
use crate::api::dra::{
    Device, NodePrepareResourceResponse, NodePrepareResourcesRequest, NodePrepareResourcesResponse,
    NodeUnprepareResourceResponse, NodeUnprepareResourcesRequest, NodeUnprepareResourcesResponse,
};
use crate::decide::prepared::PreparedClaim;
use crate::prepare;
use crate::state::Shared;

/// The DRA service over the shared state.
pub struct Service {
    shared: Arc<Shared>,
}

impl Service {
    /// A service over `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

fn answer(claim: PreparedClaim) -> NodePrepareResourceResponse {
    NodePrepareResourceResponse {
        devices: claim
            .devices
            .into_iter()
            .map(|d| Device {
                request_names: vec![d.request],
                pool_name: d.pool,
                device_name: d.device,
                cdi_device_ids: d.cdi_ids,
            })
            .collect(),
        error: String::new(),
    }
}

#[tonic::async_trait]
impl DraPlugin for Service {
    async fn node_prepare_resources(
        &self,
        request: Request<NodePrepareResourcesRequest>,
    ) -> Result<Response<NodePrepareResourcesResponse>, Status> {
        let mut claims = std::collections::HashMap::new();
        for c in &request.get_ref().claims {
            let span = tracing::info_span!("rpc", rpc = "NodePrepareResources", claim = %format!("{}/{}", c.namespace, c.name), uid = %c.uid);
            let result = prepare::prepare(&self.shared, &c.namespace, &c.name, &c.uid)
                .instrument(span.clone())
                .await;
            let response = match result {
                Ok(prepared) => {
                    span.in_scope(|| tracing::info!(devices = prepared.devices.len(), "prepared"));
                    answer(prepared)
                }
                Err(e) => {
                    span.in_scope(|| tracing::warn!(error = %e, "prepare failed"));
                    NodePrepareResourceResponse {
                        devices: Vec::new(),
                        error: e.to_string(),
                    }
                }
            };
            claims.insert(c.uid.clone(), response);
        }
        Ok(Response::new(NodePrepareResourcesResponse { claims }))
    }

    async fn node_unprepare_resources(
        &self,
        request: Request<NodeUnprepareResourcesRequest>,
    ) -> Result<Response<NodeUnprepareResourcesResponse>, Status> {
        let mut claims = std::collections::HashMap::new();
        for c in &request.get_ref().claims {
            let error = match prepare::unprepare(&self.shared, &c.uid).await {
                Ok(()) => {
                    tracing::info!(rpc = "NodeUnprepareResources", claim = %format!("{}/{}", c.namespace, c.name), uid = %c.uid, "unprepared");
                    String::new()
                }
                Err(e) => {
                    tracing::warn!(rpc = "NodeUnprepareResources", uid = %c.uid, error = %e, "unprepare failed");
                    e.to_string()
                }
            };
            claims.insert(c.uid.clone(), NodeUnprepareResourceResponse { error });
        }
        Ok(Response::new(NodeUnprepareResourcesResponse { claims }))
    }
}
