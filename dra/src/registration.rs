//! The plugin watcher's `Registration` service on our registration socket: `GetInfo` tells the
//! kubelet our driver name, DRA socket and the DRA service versions we serve;
//! `NotifyRegistrationStatus` tells us its verdict.
//!
//! A refused registration is logged and, after [`RETRY_AFTER`], the registration socket is
//! made anew so the plugin watcher sees a new plugin and tries again (the kubelet also retries
//! on its own; a fresh socket covers a kubelet that gave up).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::api::pluginregistration::registration_server::Registration;
use crate::api::pluginregistration::{
    InfoRequest, PluginInfo, RegistrationStatus, RegistrationStatusResponse,
};
use crate::names;
use crate::state::Shared;

/// Pause after a refused registration before the registration socket is made anew.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The `Registration` service.
pub struct RegistrationService {
    shared: Arc<Shared>,
    refused: mpsc::Sender<String>,
}

impl RegistrationService {
    /// A service over `shared` that sends the reason of each refused registration to `refused`.
    pub fn new(shared: Arc<Shared>, refused: mpsc::Sender<String>) -> Self {
        Self { shared, refused }
    }

    /// What `GetInfo` answers.
    pub fn info(shared: &Shared) -> PluginInfo {
        PluginInfo {
            r#type: names::PLUGIN_TYPE.into(),
            name: names::DRIVER.into(),
            endpoint: shared.config.dra_socket().display().to_string(),
            supported_versions: vec![names::DRA_SERVICE_V1.into()],
        }
    }
}

#[tonic::async_trait]
impl Registration for RegistrationService {
    async fn get_info(&self, _: Request<InfoRequest>) -> Result<Response<PluginInfo>, Status> {
        Ok(Response::new(Self::info(&self.shared)))
    }

    async fn notify_registration_status(
        &self,
        request: Request<RegistrationStatus>,
    ) -> Result<Response<RegistrationStatusResponse>, Status> {
        let status = request.into_inner();
        self.shared.set_registered(status.plugin_registered);
        if status.plugin_registered {
            tracing::info!(driver = names::DRIVER, "registered with the kubelet");
        } else {
            tracing::error!(driver = names::DRIVER, error = %status.error, "the kubelet refused our registration; registering again");
            let _ = self.refused.try_send(status.error);
        }
        Ok(Response::new(RegistrationStatusResponse {}))
    }
}
