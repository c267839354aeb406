//! Where the node's ResourceSlice goes: the apiserver through server-side apply
//! ([`KubeSlices`]), or memory for tests ([`MemorySlices`]). The slice is built by
//! `decide::slice`; this module only reads the Node's UID and the current pool generation and
//! writes the object.

use std::sync::Mutex;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::resource::v1::ResourceSlice;
use kube::Api;
use kube::api::{Patch, PatchParams};
use tokio::sync::watch;

use crate::names;

/// A place to publish the node's ResourceSlice.
#[tonic::async_trait]
pub trait Slices: Send + Sync + 'static {
    /// The UID of Node `node` (the slice's owner).
    async fn node_uid(&self, node: &str) -> Result<String, String>;
    /// The pool generation of the slice `name` as stored, if it exists.
    async fn generation(&self, name: &str) -> Result<Option<i64>, String>;
    /// Creates or updates the slice.
    async fn apply(&self, slice: &ResourceSlice) -> Result<(), String>;
}

/// Slices in the apiserver.
pub struct KubeSlices {
    client: kube::Client,
}

impl KubeSlices {
    /// Slices through `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

#[tonic::async_trait]
impl Slices for KubeSlices {
    async fn node_uid(&self, node: &str) -> Result<String, String> {
        let n = Api::<Node>::all(self.client.clone())
            .get(node)
            .await
            .map_err(|e| e.to_string())?;
        n.metadata
            .uid
            .ok_or_else(|| format!("node {node} has no UID"))
    }

    async fn generation(&self, name: &str) -> Result<Option<i64>, String> {
        Api::<ResourceSlice>::all(self.client.clone())
            .get_opt(name)
            .await
            .map(|s| s.map(|s| s.spec.pool.generation))
            .map_err(|e| e.to_string())
    }

    async fn apply(&self, slice: &ResourceSlice) -> Result<(), String> {
        let name = slice.metadata.name.clone().unwrap_or_default();
        // Forced: the slice is this node's plugin's alone; a field another manager took over
        // (an operator's edit) is taken back.
        let params = PatchParams::apply(names::FIELD_MANAGER).force();
        Api::<ResourceSlice>::all(self.client.clone())
            .patch(&name, &params, &Patch::Apply(slice))
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// Slices kept in memory: the last one applied, watchable.
pub struct MemorySlices {
    node_uid: String,
    last: watch::Sender<Option<ResourceSlice>>,
    applied: Mutex<usize>,
}

impl MemorySlices {
    /// A store whose Node has UID `node_uid`.
    pub fn new(node_uid: &str) -> Self {
        Self {
            node_uid: node_uid.into(),
            last: watch::channel(None).0,
            applied: Mutex::new(0),
        }
    }

    /// Follows the last slice applied.
    pub fn subscribe(&self) -> watch::Receiver<Option<ResourceSlice>> {
        self.last.subscribe()
    }

    /// How many applies there were.
    pub fn applied(&self) -> usize {
        self.applied.lock().map(|n| *n).unwrap_or_default()
    }
}

#[tonic::async_trait]
impl Slices for MemorySlices {
    async fn node_uid(&self, _: &str) -> Result<String, String> {
        Ok(self.node_uid.clone())
    }

    async fn generation(&self, _: &str) -> Result<Option<i64>, String> {
        Ok(self.last.borrow().as_ref().map(|s| s.spec.pool.generation))
    }

    async fn apply(&self, slice: &ResourceSlice) -> Result<(), String> {
        if let Ok(mut n) = self.applied.lock() {
            *n += 1;
        }
        self.last.send_replace(Some(slice.clone()));
        Ok(())
    }
}
