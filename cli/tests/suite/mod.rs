//! The e2e suite's setup: a namespace and fake GPU nodes (the harness), the shipped CRD and
//! profiles, and Tessera's real binaries as local processes — the webhook registered with the
//! apiserver by URL, two extender replicas electing a leader (behind a stand-in for the Service
//! that selects the leader's pod), kube-scheduler with the shipped `tessera-scheduler` profile,
//! and, when the node is named, the device plugin on the real kubelet with the NVML stand-in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

pub mod audit;
pub mod pods;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::{Api, Client};
use serde_json::json;
use tessera_core::keys;
use tessera_tests::cluster::Harness;
use tessera_tests::e2e::{self, KillOnDrop};
use tessera_tests::process::{free_addr, spawn_logged, wait_ready};
use tessera_tests::replicas::{LeaderRoute, Replica, start_replica};
use tessera_tests::scheduler::{scheduler_config, start_scheduler};
use tessera_tests::standin;

use pods::{Place, SUITE_LABEL};

/// GPU nodes of 8 GPUs each (15 GiB T4s), over three zones.
pub const NODES: usize = 39;
/// The start of the stand-in GPUs' UUIDs, to tell their inventory from an earlier one.
const STANDIN_UUID_PREFIX: &str = "GPU-5e17e000";
/// Host capacity of each fake node, the size of the trace's 8-GPU nodes.
const NODE_CPU: &str = "96";
const NODE_MEMORY: &str = "512Gi";

/// A file of the repository.
pub fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn yaml(path: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(repo_file(path)).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

fn tessera() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tessera"))
}

fn profiles_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("tessera.dev", "v1alpha1", "InjectionProfile");
    ApiResource::from_gvk_with_plural(&gvk, "injectionprofiles")
}

/// The device plugin's side of the suite, when the e2e environment names a real node.
pub struct RealNode {
    /// The node's name (`TESSERA_E2E_NODE`).
    pub name: String,
    /// The stand-in GPUs' UUIDs.
    pub gpus: Vec<String>,
    _plugin: KillOnDrop,
    _mps: KillOnDrop,
}

/// Cluster-scoped objects the suite made, removed on drop.
struct Registrations {
    kubeconfig: PathBuf,
    webhook_config: Option<String>,
    profiles: Vec<String>,
}

impl Drop for Registrations {
    fn drop(&mut self) {
        let config = self.webhook_config.take();
        let profiles = std::mem::take(&mut self.profiles);
        e2e::cleanup_blocking(self.kubeconfig.clone(), move |client| async move {
            let gone = DeleteParams::default();
            if let Some(name) = config {
                let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
                let _ = api.delete(&name, &gone).await;
            }
            let api: Api<DynamicObject> = Api::all_with(client, &profiles_resource());
            for name in profiles {
                let _ = api.delete(&name, &gone).await;
            }
        });
    }
}

/// Everything the suite runs against. Fields drop in order: processes, then registrations, then
/// the namespace and nodes.
pub struct Suite {
    pub scheduler: KillOnDrop,
    pub extenders: Vec<Replica>,
    /// Replicas started so far (names the next one).
    started: usize,
    pub route: LeaderRoute,
    pub webhook: KillOnDrop,
    pub real_node: Option<RealNode>,
    registrations: Registrations,
    pub extender_addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub h: Harness,
}

impl Suite {
    /// Sets everything up and waits until a pod submitted to the namespace comes back injected.
    pub async fn start(kubeconfig: &Path, kube_scheduler: &Path) -> Suite {
        let t0 = Instant::now();
        let h = Harness::start_with(kubeconfig, NODES, 8).await;
        let dir = tempfile::tempdir().unwrap();
        let mut registrations = Registrations {
            kubeconfig: kubeconfig.to_path_buf(),
            webhook_config: None,
            profiles: Vec::new(),
        };
        label_namespace(&h).await;
        size_nodes(&h).await;
        apply_crd(&h.client).await;
        for file in ["zookeeper", "gpu-sharing"] {
            let name = create_profile(&h, file).await;
            registrations.profiles.push(name);
        }

        let webhook_addr = free_addr();
        let ca = crate::support::serving_files(dir.path());
        let webhook = spawn_logged(
            tessera(),
            [
                "--log-level".as_ref(),
                "info".as_ref(),
                "webhook".as_ref(),
                "--listen".as_ref(),
                webhook_addr.to_string().as_ref(),
                "--tls-cert".as_ref(),
                dir.path().join("tls.crt").as_os_str(),
                "--tls-key".as_ref(),
                dir.path().join("tls.key").as_os_str(),
                "--kubeconfig".as_ref(),
                kubeconfig.as_os_str(),
            ] as [&std::ffi::OsStr; 11],
            &dir.path().join("webhook.log"),
        );
        registrations.webhook_config = Some(h.ns.clone());
        register_webhook(&h, webhook_addr, &ca).await;

        let route = LeaderRoute::start(h.client.clone(), &h.ns).await;
        let extender_addr = route.addr;
        let mut extenders = Vec::new();
        for i in 0..2 {
            let replica = start_extender_replica(&h, dir.path(), i).await;
            route.add(&replica);
            extenders.push(replica);
        }
        let leading = e2e::wait_for("an extender leader", Duration::from_secs(30), || async {
            route.leader()
        })
        .await;
        if let Err(e) = leading {
            panic!("{e}\n{}", read_logs(dir.path()));
        }
        let config = dir.path().join("scheduler-config.yaml");
        let text = scheduler_config(kubeconfig, extender_addr, keys::SCHEDULER_NAME);
        std::fs::write(&config, text).unwrap();
        let scheduler = start_scheduler(
            kube_scheduler,
            &config,
            &dir.path().join("kube-scheduler.log"),
        );
        let real_node = start_device_plugin(&h, dir.path()).await;
        let suite = Suite {
            scheduler,
            extenders,
            started: 2,
            route,
            webhook,
            real_node,
            registrations,
            extender_addr,
            dir,
            h,
        };
        suite.wait_injecting().await;
        println!(
            "setup: {NODES} fake GPU nodes of 8 GPUs, webhook at https://{webhook_addr}/mutate, \
             2 extender replicas behind {extender_addr}, kube-scheduler profile {}, ready in {:.1?}",
            keys::SCHEDULER_NAME,
            t0.elapsed()
        );
        suite
    }

    /// The namespace's pods.
    pub fn pods(&self) -> Api<Pod> {
        self.h.pods()
    }

    /// Where the suite's pods go by default.
    pub fn place(&self) -> Place<'_> {
        Place::SuiteNodes(&self.h.ns)
    }

    /// SIGKILLs the leading extender replica and starts its replacement, as the Deployment
    /// would; returns how long the verbs had no leader (until the standby's pod is labelled).
    pub async fn kill_leader(&mut self) -> Duration {
        let leader = self.route.leader().expect("a leader");
        let i = self.replica(&leader);
        let killed = Instant::now();
        self.extenders.remove(i).kill();
        let failover = self.wait_new_leader(&leader, killed).await;
        self.replace().await;
        failover
    }

    /// Replaces every replica, one at a time, as a rolling update does (the new pod first, then
    /// SIGTERM to an old one); returns the longest time the verbs had no leader.
    pub async fn rolling_restart(&mut self) -> Duration {
        let mut longest = Duration::ZERO;
        let old: Vec<String> = self.extenders.iter().map(|r| r.name.clone()).collect();
        for name in old {
            self.replace().await;
            let leader = self.route.leader();
            let stopping = Instant::now();
            let i = self.replica(&name);
            self.extenders.remove(i).terminate();
            if leader.as_deref() == Some(name.as_str()) {
                longest = longest.max(self.wait_new_leader(&name, stopping).await);
            }
        }
        longest
    }

    fn replica(&self, name: &str) -> usize {
        self.extenders
            .iter()
            .position(|r| r.name == name)
            .unwrap_or_else(|| panic!("no live replica {name}"))
    }

    /// Starts one more replica and waits until its caches are synced.
    async fn replace(&mut self) {
        let replica = start_extender_replica(&self.h, self.dir.path(), self.started).await;
        self.started += 1;
        self.route.add(&replica);
        let addr = replica.addr;
        self.extenders.push(replica);
        tokio::task::spawn_blocking(move || wait_ready(addr))
            .await
            .unwrap();
    }

    async fn wait_new_leader(&self, old: &str, since: Instant) -> Duration {
        let route = &self.route;
        let found = e2e::wait_for("a new extender leader", Duration::from_secs(60), || async {
            route.leader().filter(|l| l != old)
        })
        .await;
        if let Err(e) = found {
            panic!("{e}\n{}", self.logs());
        }
        since.elapsed()
    }

    /// The logs of the processes, for a failure message.
    pub fn logs(&self) -> String {
        read_logs(self.dir.path())
    }

    /// Waits until the apiserver calls the webhook for this namespace and the webhook has its
    /// profiles: a server-side dry run of a gpushare pod comes back translated.
    async fn wait_injecting(&self) {
        let probe = pods::pod(
            "probe",
            &[("tessera.dev/gpu-sharing", "enabled")],
            &[(keys::GPUSHARE_MEM, "1")],
            &[],
            &self.place(),
        );
        let pods = self.pods();
        let dry = PostParams {
            dry_run: true,
            ..Default::default()
        };
        let injected = e2e::wait_for("the webhook to inject", Duration::from_secs(30), || {
            let (pods, probe, dry) = (pods.clone(), probe.clone(), dry.clone());
            async move {
                let made = pods.create(&dry, &probe).await.ok()?;
                let spec = made.spec?;
                (spec.scheduler_name.as_deref() == Some(keys::SCHEDULER_NAME)).then_some(())
            }
        })
        .await;
        if let Err(e) = injected {
            panic!("{e}\n{}", self.logs());
        }
    }
}

/// Replica `i` of the extender (`tessera-extender-<letter>`), its log in `extender-<letter>.log`.
async fn start_extender_replica(h: &Harness, dir: &Path, i: usize) -> Replica {
    let letter = char::from(b'a' + u8::try_from(i % 26).unwrap());
    let name = format!("tessera-extender-{letter}");
    start_replica(
        &h.client,
        tessera(),
        &h.ns,
        &name,
        keys::SCHEDULER_NAME,
        &h.kubeconfig,
        &dir.join(format!("extender-{letter}.log")),
    )
    .await
}

/// The last lines of every process's log in `dir`, for a failure message.
fn read_logs(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".log"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = String::new();
    for name in names {
        let text = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        out += &format!("--- {name} (last 40 lines) ---\n");
        for line in tail.iter().rev() {
            out += line;
            out.push('\n');
        }
    }
    out
}

async fn label_namespace(h: &Harness) {
    let api: Api<Namespace> = Api::all(h.client.clone());
    // Opted in as an operator opts in a namespace: the shipped profiles apply to its pods.
    let patch =
        json!({"metadata": {"labels": {SUITE_LABEL: h.ns, "tessera.dev/injection": "enabled"}}});
    api.patch(&h.ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Gives the fake nodes the suite's label and the host capacity of the trace's 8-GPU nodes.
async fn size_nodes(h: &Harness) {
    let api: Api<Node> = Api::all(h.client.clone());
    let patches = h.nodes.iter().map(|name| {
        let api = api.clone();
        let ns = h.ns.clone();
        async move {
            let labels = json!({"metadata": {"labels": {SUITE_LABEL: ns}}});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&labels))
                .await
                .unwrap();
            let capacity = json!({"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": "110",
                                  keys::RESOURCE_GPU: "80"});
            let status = json!({"status": {"capacity": capacity, "allocatable": capacity}});
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .unwrap();
        }
    });
    futures::stream::iter(patches)
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
}

/// Applies the checked-in CRD (as `kubectl apply` would) and waits until it is served.
async fn apply_crd(client: &Client) {
    let crd: CustomResourceDefinition =
        serde_json::from_value(yaml("manifests/crd/injectionprofile.yaml")).unwrap();
    let name = crd.metadata.name.clone().unwrap();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let apply = PatchParams::apply("tessera-e2e-suite").force();
    api.patch(&name, &apply, &Patch::Apply(&crd)).await.unwrap();
    e2e::wait_for("the CRD to be established", e2e::SYNC_LIMIT, || {
        let api = api.clone();
        let name = name.clone();
        async move {
            let crd = api.get(&name).await.ok()?;
            let conditions = crd.status?.conditions?;
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        }
    })
    .await
    .unwrap();
}

/// Creates the shipped profile `manifests/profiles/<file>.yaml` under a name of this run's.
async fn create_profile(h: &Harness, file: &str) -> String {
    let mut doc = yaml(&format!("manifests/profiles/{file}.yaml"));
    let name = format!("{}-{file}", h.ns);
    doc["metadata"] = json!({"name": name});
    let object: DynamicObject = serde_json::from_value(doc).unwrap();
    let api: Api<DynamicObject> = Api::all_with(h.client.clone(), &profiles_resource());
    api.create(&PostParams::default(), &object).await.unwrap();
    name
}

/// Registers the shipped MutatingWebhookConfiguration by URL, narrowed to the suite's namespace
/// (labelled `tessera.dev/injection: enabled`, so the namespace hook serves every pod there).
async fn register_webhook(h: &Harness, addr: SocketAddr, ca: &str) {
    let mut config: MutatingWebhookConfiguration =
        serde_json::from_value(yaml("manifests/webhook/mutatingwebhookconfiguration.yaml"))
            .unwrap();
    config.metadata.name = Some(h.ns.clone());
    for hook in config.webhooks.iter_mut().flatten() {
        hook.client_config.service = None;
        hook.client_config.url = Some(format!("https://{addr}/mutate"));
        hook.client_config.ca_bundle = Some(ByteString(ca.as_bytes().to_vec()));
        // The shipped selectors, narrowed to the suite's namespace.
        let requirement =
            serde_json::from_value(json!({"key": SUITE_LABEL, "operator": "In", "values": [h.ns]}))
                .unwrap();
        hook.namespace_selector
            .get_or_insert_with(Default::default)
            .match_expressions
            .get_or_insert_with(Vec::new)
            .push(requirement);
    }
    let api: Api<MutatingWebhookConfiguration> = Api::all(h.client.clone());
    api.create(&PostParams::default(), &config).await.unwrap();
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Starts `tessera device-plugin` for the real node named by `TESSERA_E2E_NODE`, with two
/// stand-in A100s, and waits until the kubelet advertises them; `None` (saying so) when the
/// node or its kubelet directories are not named.
async fn start_device_plugin(h: &Harness, dir: &Path) -> Option<RealNode> {
    let (Some(node), Some(plugin_dir), Some(pod_resources)) = (
        env("TESSERA_E2E_NODE"),
        env("TESSERA_E2E_PLUGIN_DIR"),
        env("TESSERA_E2E_POD_RESOURCES_SOCKET"),
    ) else {
        println!(
            "skipping the device plugin part: set TESSERA_E2E_NODE, TESSERA_E2E_PLUGIN_DIR and \
             TESSERA_E2E_POD_RESOURCES_SOCKET to run it on a real kubelet"
        );
        return None;
    };
    let gpus: Vec<String> = (0..2)
        .map(|i| format!("{STANDIN_UUID_PREFIX}-0000-4000-8000-00000000000{i}"))
        .collect();
    let config: String = gpus
        .iter()
        .map(|u| standin::gpu_line(u, "NVIDIA A100-SXM4-40GB", 40960))
        .collect();
    let lib_dir = dir.join("nvml");
    std::fs::create_dir(&lib_dir).unwrap();
    let lib = standin::install(&lib_dir, &config);
    // Shares hold only behind MPS: the real `tessera mps-daemon` over the stand-ins, and the
    // device plugin reading its status (shares are placed only on GPUs with live isolation).
    let mps_root = dir.join("mps");
    let control = standin::install_mps_control(&lib_dir);
    let mps_metrics = free_addr().to_string();
    let mps_args: [&std::ffi::OsStr; 11] = [
        "--log-level".as_ref(),
        "info".as_ref(),
        "mps-daemon".as_ref(),
        "--mps-root".as_ref(),
        mps_root.as_ref(),
        "--mps-control".as_ref(),
        control.as_ref(),
        "--nvml-lib".as_ref(),
        lib.as_os_str(),
        "--metrics-listen".as_ref(),
        mps_metrics.as_ref(),
    ];
    let mps = spawn_logged(tessera(), mps_args, &dir.join("mps-daemon.log"));
    let socket = format!("{}.sock", h.ns);
    let metrics = free_addr().to_string();
    let args: [&std::ffi::OsStr; 21] = [
        "--log-level".as_ref(),
        "info".as_ref(),
        "device-plugin".as_ref(),
        "--nvml-lib".as_ref(),
        lib.as_os_str(),
        "--plugin-dir".as_ref(),
        plugin_dir.as_ref(),
        "--socket-name".as_ref(),
        socket.as_ref(),
        "--pod-resources-socket".as_ref(),
        pod_resources.as_ref(),
        "--node-name".as_ref(),
        node.as_ref(),
        "--metrics-listen".as_ref(),
        metrics.as_ref(),
        "--inventory-min-interval-seconds".as_ref(),
        "1".as_ref(),
        "--kubeconfig".as_ref(),
        h.kubeconfig.as_os_str(),
        "--mps-root".as_ref(),
        mps_root.as_ref(),
    ];
    let plugin = spawn_logged(tessera(), args, &dir.join("device-plugin.log"));
    let nodes: Api<Node> = Api::all(h.client.clone());
    let advertised = e2e::wait_for(
        "the kubelet to advertise 20 slots",
        Duration::from_secs(60),
        || {
            let nodes = nodes.clone();
            let node = node.clone();
            async move {
                let n = nodes.get(&node).await.ok()?;
                let slots = n.status?.allocatable?.get(keys::RESOURCE_GPU)?.0.clone();
                let fresh = n
                    .metadata
                    .annotations?
                    .get(keys::ANNOTATION_GPU_INVENTORY)?
                    .contains(STANDIN_UUID_PREFIX);
                (slots == "20" && fresh).then_some(())
            }
        },
    )
    .await;
    if let Err(e) = advertised {
        let log = std::fs::read_to_string(dir.join("device-plugin.log")).unwrap_or_default();
        panic!("{e}\n--- device-plugin ---\n{log}");
    }
    // Registered: ready, and its metrics lint clean in the text format plain scrapers get.
    let metrics: SocketAddr = metrics.parse().unwrap();
    let scraped = tokio::task::spawn_blocking(move || {
        wait_ready(metrics);
        tessera_tests::process::get(metrics, "/metrics")
    })
    .await
    .unwrap()
    .unwrap();
    let (_, body) = scraped.split_once("\r\n\r\n").unwrap();
    assert!(
        body.contains("tessera_device_plugin_registered 1"),
        "{body}"
    );
    tessera_tests::promtool::assert_clean(body);
    Some(RealNode {
        name: node,
        gpus,
        _plugin: plugin,
        _mps: mps,
    })
}
