//! Shared harness for the DRA plugin tests: a node directory with the NVML stand-in (one GPU),
//! a kubelet root, a CDI directory and an MPS root whose status the test controls; the plugin
//! running there with claims from the captured-shape fixtures and slices kept in memory; and a
//! fake kubelet that does what the plugin watcher does (GetInfo, then NotifyRegistrationStatus)
//! and calls the DRA service on the endpoint it was given.

// Test support: failing loudly is the point here, as in the tests themselves.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceSlice};
use tessera_core::plugin::mps::MpsStatus;
use tessera_dra_plugin::Plugin;
use tessera_dra_plugin::api::dra::dra_plugin_client::DraPluginClient;
use tessera_dra_plugin::api::dra::{
    Claim, NodePrepareResourceResponse, NodePrepareResourcesRequest, NodeUnprepareResourcesRequest,
};
use tessera_dra_plugin::api::pluginregistration::registration_client::RegistrationClient;
use tessera_dra_plugin::api::pluginregistration::{InfoRequest, PluginInfo, RegistrationStatus};
use tessera_dra_plugin::claims::MemoryClaims;
use tessera_dra_plugin::config::Config;
use tessera_dra_plugin::nvml::NvmlGpus;
use tessera_dra_plugin::slices::MemorySlices;
use tessera_dra_plugin::sockets::unix_channel;
use tokio::sync::watch;
use tonic::transport::Channel;

pub use tessera_tests::standin::gpu_line;

/// Generous bound for anything the tests await.
pub const WAIT: Duration = Duration::from_secs(10);
pub const NODE: &str = "gpu-node-1";
pub const GPU: &str = "GPU-00000000-0000-0000-0000-000000000000";

/// A fixture claim from `tests/fixtures/dra/`.
pub fn fixture(name: &str) -> ResourceClaim {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/dra")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The 8 GiB / 25% claim.
pub fn small() -> ResourceClaim {
    fixture("resourceclaim.8gi-25.json")
}

/// The 16 GiB / 50% claim of the same GPU.
pub fn large() -> ResourceClaim {
    fixture("resourceclaim.16gi-50.json")
}

/// How the kubelet names a claim.
pub fn named(claim: &ResourceClaim) -> Claim {
    Claim {
        namespace: claim.metadata.namespace.clone().unwrap(),
        uid: claim.metadata.uid.clone().unwrap(),
        name: claim.metadata.name.clone().unwrap(),
    }
}

/// A node's directories, kept across plugin restarts.
pub struct Node {
    pub dir: tempfile::TempDir,
}

impl Node {
    /// One 80 GiB A100 (MPS-capable), and a ready multi-user MPS daemon.
    pub fn one_gpu() -> Self {
        let dir = tempfile::tempdir().unwrap();
        tessera_tests::standin::install(dir.path(), &gpu_line(GPU, "NVIDIA A100-SXM4-80GB", 81920));
        for sub in ["kubelet", "cdi", "mps"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let node = Self { dir };
        node.set_mps_ready(true);
        node
    }

    pub fn kubelet_root(&self) -> PathBuf {
        self.dir.path().join("kubelet")
    }

    pub fn cdi_dir(&self) -> PathBuf {
        self.dir.path().join("cdi")
    }

    pub fn mps_root(&self) -> PathBuf {
        self.dir.path().join("mps")
    }

    /// Writes a fresh MPS status holding the GPU, or removes it.
    pub fn set_mps_ready(&self, ready: bool) {
        let file = self.mps_root().join("status.json");
        if ready {
            let status = MpsStatus {
                version: "v1".into(),
                gpus: vec![GPU.into()],
                multi_user: true,
                heartbeat: jiff::Timestamp::now().as_second() + 3600,
            };
            std::fs::write(file, status.encode()).unwrap();
        } else {
            std::fs::remove_file(file).unwrap();
        }
    }

    pub fn config(&self) -> Config {
        let kubelet = self.kubelet_root();
        Config {
            nvml_lib: self.dir.path().join("libnvidia-ml.so"),
            registry_dir: kubelet.join("plugins_registry"),
            plugin_dir: kubelet.join("plugins/gpu.tessera.dev"),
            cdi_dir: self.cdi_dir(),
            node_name: NODE.into(),
            mps_root: Some(self.mps_root()),
            mps_poll: Duration::from_millis(50),
            mps_status_max_age_secs: 10,
            health_check_every: Duration::from_millis(100),
            recover_after: Duration::from_millis(500),
            resync_every: Duration::from_secs(3600),
        }
    }

    /// The CDI spec files written, by name.
    pub fn cdi_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.cdi_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A CDI spec file, parsed.
    pub fn cdi_spec(&self, file: &str) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.cdi_dir().join(file)).unwrap()).unwrap()
    }
}

/// The plugin running on a [`Node`] with claims in memory.
pub struct Running {
    pub node: Node,
    pub claims: Arc<MemoryClaims>,
    pub slices: Arc<MemorySlices>,
    pub plugin: Arc<Plugin>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts the plugin with both fixture claims known to the "apiserver"; returns once its
    /// registration socket is served.
    pub async fn start(node: Node) -> Self {
        let claims = Arc::new(MemoryClaims::default());
        claims.insert(small());
        claims.insert(large());
        let slices = Arc::new(MemorySlices::new("node-uid-1"));
        let config = node.config();
        let gpus = Arc::new(NvmlGpus::load(&config.nvml_lib).expect("stand-in loads"));
        let plugin = Arc::new(
            Plugin::new(config.clone(), gpus, claims.clone(), slices.clone())
                .expect("plugin starts"),
        );
        let (shutdown, rx) = watch::channel(false);
        let runner = Arc::clone(&plugin);
        let task = tokio::spawn(async move { runner.run(rx).await.expect("plugin runs") });
        let socket = config.registration_socket();
        tokio::time::timeout(WAIT, async {
            while !socket.exists() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the registration socket appears");
        Self {
            node,
            claims,
            slices,
            plugin,
            shutdown,
            task,
        }
    }

    /// What the plugin watcher does: GetInfo, then tell the plugin it is registered.
    pub async fn register(&self) -> PluginInfo {
        let mut reg = self.registration().await;
        let info = reg.get_info(InfoRequest {}).await.unwrap().into_inner();
        reg.notify_registration_status(RegistrationStatus {
            plugin_registered: true,
            error: String::new(),
        })
        .await
        .unwrap();
        info
    }

    pub async fn registration(&self) -> RegistrationClient<Channel> {
        let socket = self.node.config().registration_socket();
        RegistrationClient::new(unix_channel(&socket).await.unwrap())
    }

    /// A DRA client on the endpoint the plugin registered.
    pub async fn dra(&self) -> DraPluginClient<Channel> {
        let endpoint = self.register().await.endpoint;
        DraPluginClient::new(unix_channel(Path::new(&endpoint)).await.unwrap())
    }

    /// NodePrepareResources for `claims`; the answer per claim UID, in request order.
    pub async fn prepare(&self, claims: &[Claim]) -> Vec<NodePrepareResourceResponse> {
        let mut dra = self.dra().await;
        let mut answer = dra
            .node_prepare_resources(NodePrepareResourcesRequest {
                claims: claims.to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        claims
            .iter()
            .map(|c| {
                answer
                    .claims
                    .remove(&c.uid)
                    .expect("an answer for every claim")
            })
            .collect()
    }

    /// NodeUnprepareResources for `claims`; the error text per claim, in request order.
    pub async fn unprepare(&self, claims: &[Claim]) -> Vec<String> {
        let mut dra = self.dra().await;
        let mut answer = dra
            .node_unprepare_resources(NodeUnprepareResourcesRequest {
                claims: claims.to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        claims
            .iter()
            .map(|c| {
                answer
                    .claims
                    .remove(&c.uid)
                    .expect("an answer for every claim")
                    .error
            })
            .collect()
    }

    /// The first published slice that `accept` takes.
    pub async fn slice_where(&self, accept: impl Fn(&ResourceSlice) -> bool) -> ResourceSlice {
        let mut rx = self.slices.subscribe();
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(s) = rx.borrow_and_update().as_ref().filter(|s| accept(s)) {
                    return s.clone();
                }
                rx.changed().await.unwrap();
            }
        })
        .await
        .expect("a matching ResourceSlice in time")
    }

    /// Waits until the published slice says the GPU's MPS isolation is live (the MPS status
    /// is read on the plugin's first poll), so prepares see it too.
    pub async fn isolated(&self) -> ResourceSlice {
        self.slice_where(|s| mps_live(s) == Some(true)).await
    }

    /// Stops the plugin and waits for it; gives the node back for a restart.
    pub async fn stop(self) -> Node {
        self.shutdown.send(true).unwrap();
        tokio::time::timeout(WAIT, self.task)
            .await
            .unwrap()
            .unwrap();
        self.node
    }
}

/// The env of a CDI spec's first device as a map.
pub fn spec_env(spec: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    spec["devices"][0]["containerEdits"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let (k, v) = e.as_str().unwrap().split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The `mpsIsolation` attribute of the slice's first device.
pub fn mps_live(slice: &ResourceSlice) -> Option<bool> {
    slice.spec.devices.as_ref()?.first()?.attributes.as_ref()?["mpsIsolation"].bool
}
