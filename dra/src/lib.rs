//! tessera-dra-plugin: a Dynamic Resource Allocation kubelet plugin for MPS-enforced shares of
//! a GPU (issue 32), run as `tessera dra-plugin`.
//!
//! - [`decide`]: every decision, pure — the ResourceSlice from the node's GPUs, a claim's share
//!   and container edits, the CDI spec, the prepared claims and their checkpoint.
//! - [`api`]: the plugin registration and DRA v1 bindings, generated from `proto/`.
//! - [`sockets`], [`registration`], [`service`]: our two sockets, `Registration` and
//!   `DRAPlugin`, each connection behind [`authority`]'s shim (h2 refuses the `:authority`
//!   the kubelet sends); [`prepare`]: one claim's prepare and unprepare with its files.
//! - [`publish`], [`mps`], [`health`]: the background tasks that keep the slice true.
//! - [`nvml`], [`claims`], [`slices`], [`files`]: the I/O boundaries, each behind a trait
//!   or a small function so tests run it with the NVML stand-in and claims in memory.
//!
//! **No NVML.** When NVML cannot be loaded the plugin logs why, publishes a slice with no
//! device and still serves, so the kubelet can unprepare claims prepared before.

pub mod api;
pub mod authority;
pub mod claims;
pub mod config;
pub mod decide;
pub mod error;
pub mod files;
pub mod health;
pub mod mps;
pub mod names;
pub mod nvml;
pub mod prepare;
pub mod publish;
pub mod registration;
pub mod service;
pub mod slices;
pub mod sockets;
pub mod state;

use std::sync::Arc;

use tokio::sync::watch;

use crate::claims::Claims;
use crate::config::Config;
use crate::decide::prepared::Prepared;
use crate::error::{NvmlFailure, StartError};
use crate::nvml::{Discovered, Gpus};
use crate::slices::Slices;
use crate::state::Shared;

/// The DRA plugin, ready to run.
pub struct Plugin {
    shared: Arc<Shared>,
    gpus: Arc<dyn Gpus>,
    slices: Arc<dyn Slices>,
    unavailable: Option<NvmlFailure>,
}

impl Plugin {
    /// Discovers the GPUs and reads the checkpoint of claims prepared before a restart. A
    /// checkpoint that exists but cannot be read stops the start: serving without it would
    /// forget prepared claims.
    pub fn new(
        config: Config,
        gpus: Arc<dyn Gpus>,
        claims: Arc<dyn Claims>,
        slices: Arc<dyn Slices>,
    ) -> Result<Self, StartError> {
        let (discovered, unavailable) = match gpus.discover() {
            Ok(d) => (d, None),
            Err(why) => (
                Discovered {
                    gpus: Vec::new(),
                    driver_version: None,
                },
                Some(why),
            ),
        };
        let prepared = load_checkpoint(&config)?;
        let shared = Arc::new(Shared::new(config, discovered, claims, prepared));
        Ok(Self {
            shared,
            gpus,
            slices,
            unavailable,
        })
    }

    /// The shared state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Why NVML could not be used, if it could not.
    pub fn unavailable(&self) -> Option<&NvmlFailure> {
        self.unavailable.as_ref()
    }

    /// Serves and registers, keeps the slice published, until `shutdown` turns true; then
    /// removes our sockets.
    pub async fn run(&self, shutdown: watch::Receiver<bool>) -> Result<(), StartError> {
        if let Some(why) = &self.unavailable {
            tracing::error!("{why}");
        }
        let mut tasks = tokio::task::JoinSet::new();
        let shared = &self.shared;
        tasks.spawn(mps::run(Arc::clone(shared), shutdown.clone()));
        tasks.spawn(health::run(
            Arc::clone(&self.gpus),
            Arc::clone(shared),
            shutdown.clone(),
        ));
        tasks.spawn(publish::run(
            Arc::clone(shared),
            Arc::clone(&self.slices),
            shutdown.clone(),
        ));
        let result = sockets::run(Arc::clone(shared), shutdown).await;
        tasks.abort_all();
        result
    }
}

fn load_checkpoint(config: &Config) -> Result<Prepared, StartError> {
    let path = config.checkpoint();
    match std::fs::read_to_string(&path) {
        Ok(text) => Prepared::decode(&text).map_err(|source| StartError::Checkpoint {
            path: path.display().to_string(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Prepared::default()),
        Err(source) => Err(StartError::Io {
            what: "reading the checkpoint",
            path: path.display().to_string(),
            source,
        }),
    }
}
