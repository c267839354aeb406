//! Extender replicas as a Deployment runs them, on this host: each process has a Pod object of
//! its own (a placeholder in the test namespace, never scheduled) named by `POD_NAME`, and the
//! leader labels it. A Service that selects the leader label is played by [`LeaderRoute`]: it
//! sends each new connection to the replica whose pod carries the label now, as the endpoints
//! controller and kube-proxy would, and refuses connections while no pod does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tessera_extender::leader::{LABEL_ROLE, ROLE_LEADER};

use crate::e2e::KillOnDrop;
use crate::process::free_addr;

/// One extender process and the pod it plays.
pub struct Replica {
    /// The placeholder pod's name (the replica's Lease identity).
    pub name: String,
    /// Where it serves.
    pub addr: SocketAddr,
    /// The process.
    pub process: KillOnDrop,
}

impl Replica {
    /// Stops it as the kubelet would on a rolling update: SIGTERM, then waits for it to exit.
    pub fn terminate(mut self) {
        let pid = self.process.0.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let _ = self.process.0.wait();
    }

    /// SIGKILL: no goodbye, the Lease stays held until it expires.
    pub fn kill(mut self) {
        let _ = self.process.0.kill();
        let _ = self.process.0.wait();
    }
}

/// Starts replica `name` of `tessera extender` for `scheduler`'s pods, its placeholder pod
/// created in `namespace` first; its log is appended to `log`.
pub async fn start_replica(
    client: &Client,
    tessera: &Path,
    namespace: &str,
    name: &str,
    scheduler: &str,
    kubeconfig: &Path,
    log: &Path,
) -> Replica {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let placeholder: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "tessera-extender"}},
        // A scheduler that does not exist: the pod stays a record and never runs.
        "spec": {"schedulerName": "tessera-e2e-nobody",
                 "containers": [{"name": "extender", "image": "local/app:1"}]}
    }))
    .unwrap();
    // Admission may be refused while a webhook the test registered is still starting.
    crate::e2e::wait_for("the placeholder pod", Duration::from_secs(30), || {
        let (pods, placeholder) = (pods.clone(), placeholder.clone());
        async move { pods.create(&PostParams::default(), &placeholder).await.ok() }
    })
    .await
    .unwrap();
    let addr = free_addr();
    let listen = addr.to_string();
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = std::process::Command::new(tessera)
        .args(["--log-level", "info", "extender", "--listen", &listen])
        .args(["--scheduler-name", scheduler, "--kubeconfig"])
        .arg(kubeconfig)
        .env("POD_NAME", name)
        .env("POD_NAMESPACE", namespace)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Replica {
        name: name.to_string(),
        addr,
        process: KillOnDrop(child),
    }
}

/// The Service in front of the replicas: routes to the leader-labelled pod's replica.
pub struct LeaderRoute {
    /// Where kube-scheduler is pointed.
    pub addr: SocketAddr,
    backends: Arc<Mutex<HashMap<String, SocketAddr>>>,
    leader: Arc<Mutex<Option<String>>>,
}

impl LeaderRoute {
    /// Starts routing; replicas are added with [`LeaderRoute::add`].
    pub async fn start(client: Client, namespace: &str) -> LeaderRoute {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let backends: Arc<Mutex<HashMap<String, SocketAddr>>> = Arc::default();
        let leader: Arc<Mutex<Option<String>>> = Arc::default();
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let seen = leader.clone();
        // The endpoints controller's part: which pod carries the label now.
        tokio::spawn(async move {
            let selector = ListParams::default().labels(&format!("{LABEL_ROLE}={ROLE_LEADER}"));
            loop {
                if let Ok(list) = pods.list_metadata(&selector).await {
                    let names: Vec<String> =
                        list.into_iter().filter_map(|p| p.metadata.name).collect();
                    *seen.lock().unwrap() = names.first().cloned();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let (to, from) = (backends.clone(), leader.clone());
        // kube-proxy's part: each new connection goes to the current endpoint.
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let target = from
                    .lock()
                    .unwrap()
                    .as_ref()
                    .and_then(|name| to.lock().unwrap().get(name).copied());
                // No endpoint: the connection is refused (dropped), as with an empty Service.
                let Some(target) = target else { continue };
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        LeaderRoute {
            addr,
            backends,
            leader,
        }
    }

    /// Routes to `replica` whenever its pod is the leader.
    pub fn add(&self, replica: &Replica) {
        self.backends
            .lock()
            .unwrap()
            .insert(replica.name.clone(), replica.addr);
    }

    /// The leader-labelled pod, as last seen.
    pub fn leader(&self) -> Option<String> {
        self.leader.lock().unwrap().clone()
    }
}
