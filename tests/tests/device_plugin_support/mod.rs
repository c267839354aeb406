//! Shared harness for the device plugin tests: the NVML stand-in library (built once per test
//! binary with cargo), a fake kubelet serving `Registration` on a temp-dir socket that dials the
//! plugin back during `Register` as the real one does, a fake PodResources server, and pod
//! builders for the contract's annotations.

// Test support: failing loudly is the point here, as in the tests themselves.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod kubelet;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tessera_core::annotations::{Assignment, ContainerAssignment, GpuShare, encode_assignment};
use tessera_core::keys;
use tessera_core::testing::PodBuilder;
use tessera_device_plugin::Plugin;
use tessera_device_plugin::api::v1beta1::device_plugin_client::DevicePluginClient;
use tessera_device_plugin::api::v1beta1::{Empty, ListAndWatchResponse, RegisterRequest};
use tessera_device_plugin::config::Config;
use tessera_device_plugin::kubelet::unix_channel;
use tessera_device_plugin::metrics::Metrics;
use tessera_device_plugin::nvml::NvmlGpus;
use tessera_device_plugin::pods::MemoryPods;
use tokio::sync::watch;
use tonic::transport::Channel;

#[allow(unused_imports)]
pub use kubelet::{FakeKubelet, FakePodResources};

/// Generous bound for anything the tests await; the plugin's own targets are far below it.
pub const WAIT: Duration = Duration::from_secs(10);
pub const NODE: &str = "gpu-node-1";

pub use tessera_tests::standin::{gpu_line, library as standin_library};

/// A temp dir holding a private copy of the stand-in and its config.
pub struct Node {
    pub dir: tempfile::TempDir,
}

impl Node {
    pub fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(standin_library(), dir.path().join("libnvidia-ml.so")).unwrap();
        std::fs::write(dir.path().join("nvml-standin.conf"), config).unwrap();
        std::fs::create_dir(dir.path().join("plugins")).unwrap();
        Self { dir }
    }

    /// Two A100s, `GPU-0000…-0` and `GPU-0000…-1`.
    pub fn two_gpus() -> Self {
        Self::new(
            &(gpu_line(&uuid(0), "NVIDIA A100-SXM4-40GB", 40960)
                + &gpu_line(&uuid(1), "NVIDIA A100-SXM4-40GB", 40960)),
        )
    }

    pub fn lib(&self) -> PathBuf {
        self.dir.path().join("libnvidia-ml.so")
    }

    pub fn plugin_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    pub fn pod_resources_socket(&self) -> PathBuf {
        self.dir.path().join("pod-resources.sock")
    }

    /// Makes NVML stop answering for GPU `index` (`lost`) or answer again.
    pub fn set_lost(&self, index: u32, lost: bool) {
        let path = self.dir.path().join("nvml-standin.lost");
        if lost {
            std::fs::write(path, format!("{index}\n")).unwrap();
        } else {
            std::fs::remove_file(path).unwrap();
        }
    }

    /// Makes the stand-in report XID `xid` on GPU `index`.
    pub fn raise_xid(&self, index: u32, xid: u64) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("nvml-standin.xid"))
            .unwrap();
        writeln!(f, "{index} {xid}").unwrap();
    }

    pub fn config(&self) -> Config {
        Config {
            nvml_lib: self.lib(),
            plugin_dir: self.plugin_dir(),
            socket_name: "tessera-gpu.sock".into(),
            kubelet_socket: self.plugin_dir().join("kubelet.sock"),
            pod_resources_socket: Some(self.pod_resources_socket()),
            node_name: NODE.into(),
            slots_per_gpu: 4,
            recover_after: Duration::from_millis(500),
            health_check_every: Duration::from_millis(100),
            // Tests reconcile explicitly; the periodic pass only runs once at start.
            reconcile_every: Duration::from_secs(3600),
            heartbeat_every: Duration::from_secs(3600),
            inventory_min_interval: Duration::from_millis(10),
            mps_root: None,
            mps_poll: Duration::from_millis(50),
            mps_status_max_age_secs: 10,
            // Tests that account per container point this at a fake /proc.
            proc_root: None,
            coexistence_check_every: Duration::from_millis(100),
        }
    }
}

impl Node {
    /// [`Node::config`] for the e2e cluster's real kubelet on `node_name`: its device plugin
    /// directory (`TESSERA_E2E_PLUGIN_DIR`, default the kubelet's), a socket named after
    /// `unique`, a 30 s heartbeat.
    pub fn real_kubelet_config(&self, node_name: &str, unique: &str) -> Config {
        let mut config = self.config();
        config.plugin_dir = std::env::var("TESSERA_E2E_PLUGIN_DIR")
            .ok()
            .filter(|v| !v.is_empty())
            .map_or_else(|| "/var/lib/kubelet/device-plugins".into(), PathBuf::from);
        config.kubelet_socket = config.plugin_dir.join("kubelet.sock");
        config.socket_name = format!("{unique}.sock");
        config.node_name = node_name.to_string();
        config.heartbeat_every = Duration::from_secs(30);
        config
    }
}

/// The plugin running in this process against the e2e cluster: pods from the apiserver, NVML
/// from the node's stand-in.
pub struct OnCluster {
    pub metrics: Metrics,
    pub registry: prometheus_client::registry::Registry,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), tessera_device_plugin::kubelet::ServeError>>,
}

impl OnCluster {
    /// Starts the plugin with `config` on node `node` of the cluster `client` talks to.
    pub async fn start(client: kube::Client, node: &str, config: Config) -> Self {
        let pods = Arc::new(tessera_device_plugin::pods::KubePods::start(client, node).await);
        let gpus = Arc::new(NvmlGpus::load(&config.nvml_lib).unwrap());
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Metrics::new(&mut registry);
        let plugin = Plugin::new(config, gpus, pods.clone(), pods, metrics.clone());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(async move { plugin.run(stopped).await });
        Self {
            metrics,
            registry,
            stop,
            task,
        }
    }

    /// Stops the plugin and waits for it to finish cleanly.
    pub async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(WAIT, self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// A UUID shaped like NVML's.
pub fn uuid(i: u32) -> String {
    format!("GPU-00000000-0000-0000-0000-00000000000{i}")
}

/// The plugin running against a node, a fake kubelet and in-memory pods.
pub struct Running {
    pub node: Node,
    pub kubelet: FakeKubelet,
    pub pods: Arc<MemoryPods>,
    pub plugin: Arc<Plugin>,
    pub registration: RegisterRequest,
    pub metrics: prometheus_client::registry::Registry,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts the fake kubelet and the plugin; returns after the first registration.
    pub async fn start(node: Node, config: Config) -> Self {
        Self::start_with(node, config, Arc::new(MemoryPods::default())).await
    }

    /// [`Running::start`] with pods (and node resources) the caller prepared.
    pub async fn start_with(node: Node, config: Config, pods: Arc<MemoryPods>) -> Self {
        let mut kubelet = FakeKubelet::start(&config.kubelet_socket, &config.plugin_dir);
        let mut metrics = prometheus_client::registry::Registry::default();
        let gpus = Arc::new(NvmlGpus::load(&config.nvml_lib).expect("stand-in loads"));
        let plugin = Arc::new(Plugin::new(
            config,
            gpus,
            pods.clone(),
            pods.clone(),
            Metrics::new(&mut metrics),
        ));
        let (shutdown, rx) = watch::channel(false);
        let runner = Arc::clone(&plugin);
        let task = tokio::spawn(async move { runner.run(rx).await.expect("plugin runs") });
        let registration = kubelet.next_registration().await;
        Self {
            node,
            kubelet,
            pods,
            plugin,
            registration,
            metrics,
            shutdown,
            task,
        }
    }

    pub async fn two_gpus() -> Self {
        let node = Node::two_gpus();
        let config = node.config();
        Self::start(node, config).await
    }

    pub fn socket(&self) -> PathBuf {
        self.node.plugin_dir().join(&self.registration.endpoint)
    }

    pub async fn client(&self) -> DevicePluginClient<Channel> {
        DevicePluginClient::new(unix_channel(&self.socket()).await.unwrap())
    }

    pub async fn watch(&self) -> tonic::Streaming<ListAndWatchResponse> {
        self.client()
            .await
            .list_and_watch(Empty {})
            .await
            .unwrap()
            .into_inner()
    }

    /// Stops the plugin and waits for it to finish.
    pub async fn stop(self) -> Node {
        self.shutdown.send(true).unwrap();
        tokio::time::timeout(WAIT, self.task)
            .await
            .unwrap()
            .unwrap();
        self.node
    }

    pub fn metrics_text(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.metrics).unwrap();
        text
    }
}

/// The next ListAndWatch update, under [`WAIT`].
pub async fn next(stream: &mut tonic::Streaming<ListAndWatchResponse>) -> ListAndWatchResponse {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("an update in time")
        .unwrap()
        .unwrap()
}

/// `(id, health)` of every device in an update.
pub fn health(update: &ListAndWatchResponse) -> Vec<(String, String)> {
    update
        .devices
        .iter()
        .map(|d| (d.id.clone(), d.health.clone()))
        .collect()
}

/// A pod bound to [`NODE`] in `bind-phase: allocating`, one container `main` assigned `gpus`
/// with `mem_mib` and `core_milli` on each.
pub fn allocating_pod(
    name: &str,
    bind_time: &str,
    gpus: &[String],
    mem_mib: u64,
    core_milli: u32,
) -> Pod {
    let assignment = Assignment {
        node: NODE.into(),
        containers: vec![ContainerAssignment {
            container: "main".into(),
            init: false,
            gpus: gpus
                .iter()
                .map(|u| GpuShare {
                    uuid: u.clone(),
                    mem_mib,
                    core_milli,
                })
                .collect(),
        }],
    };
    PodBuilder::new("ml", name)
        .container("main", &[(keys::RESOURCE_GPU, &gpus.len().to_string())])
        .annotation(
            keys::ANNOTATION_GPU_ASSIGNMENT,
            &encode_assignment(&assignment),
        )
        .annotation(keys::ANNOTATION_BIND_PHASE, keys::BIND_PHASE_ALLOCATING)
        .annotation(keys::ANNOTATION_BIND_TIME, bind_time)
        .build()
}

/// An annotation of pod `ml/name`.
pub fn annotation(pods: &MemoryPods, name: &str, key: &str) -> Option<String> {
    pods.pods()
        .into_iter()
        .find(|p| p.metadata.name.as_deref() == Some(name))
        .and_then(|p| p.metadata.annotations.and_then(|a| a.get(key).cloned()))
}
