//! The device plugin with `--mps-root`, over its real unix socket against a fake kubelet and the
//! NVML stand-in, with `tessera mps-daemon`'s status file written by the test: slots Unhealthy
//! while no daemon is ready, isolation in the inventory, the pipe and shm mounts in Allocate,
//! and refusals naming the GPU.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod device_plugin_support;

use device_plugin_support::*;
use tessera_core::annotations::decode_inventory;
use tessera_core::inventory::Isolation;
use tessera_core::plugin::mps::{MpsStatus, STATUS_VERSION};
use tessera_device_plugin::api::v1beta1::{AllocateRequest, ContainerAllocateRequest};

struct Mps {
    running: Running,
    root: tempfile::TempDir,
}

impl Mps {
    async fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        let node = Node::two_gpus();
        let mut config = node.config();
        config.mps_root = Some(root.path().to_path_buf());
        let running = Running::start(node, config).await;
        Self { running, root }
    }

    /// Writes the daemon's status, `age` seconds old, holding both GPUs.
    fn publish(&self, multi_user: bool, age: i64) {
        let status = MpsStatus {
            version: STATUS_VERSION.into(),
            gpus: vec![uuid(0), uuid(1)],
            multi_user,
            heartbeat: jiff::Timestamp::now().as_second() - age,
        };
        std::fs::write(self.root.path().join("status.json"), status.encode()).unwrap();
    }

    fn withdraw(&self) {
        std::fs::remove_file(self.root.path().join("status.json")).unwrap();
    }

    /// The last inventory written, by GPU: (healthy, isolation).
    fn inventory(&self) -> Vec<(bool, Isolation)> {
        let writes = self.running.pods.inventory_writes();
        let (text, _) = writes.last().expect("an inventory write");
        decode_inventory(text)
            .unwrap()
            .gpus
            .iter()
            .map(|g| (g.healthy, g.isolation))
            .collect()
    }

    async fn allocate(
        &self,
        slot: String,
    ) -> Result<tessera_device_plugin::api::v1beta1::ContainerAllocateResponse, tonic::Status> {
        let request = AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec![slot],
            }],
        };
        let mut client = self.running.client().await;
        client
            .allocate(request)
            .await
            .map(|r| r.into_inner().container_responses.remove(0))
    }
}

/// Waits for an update in which every slot has `health`.
async fn until_all(
    stream: &mut tonic::Streaming<tessera_device_plugin::api::v1beta1::ListAndWatchResponse>,
    health: &str,
) {
    loop {
        let update = next(stream).await;
        if update.devices.iter().all(|d| d.health == health) {
            return;
        }
    }
}

#[tokio::test]
async fn slots_are_offered_only_while_the_mps_daemon_is_ready_and_fresh() {
    let mps = Mps::start().await;
    let mut stream = mps.running.watch().await;
    // No status yet: a client started now would run unlimited.
    until_all(&mut stream, "Unhealthy").await;
    mps.publish(true, 0);
    until_all(&mut stream, "Healthy").await;
    tokio::time::timeout(WAIT, async {
        while mps.inventory() != [(true, Isolation::MpsMultiUser); 2] {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the inventory says isolation is live");
    // The daemon stops: withdrawn status, slots Unhealthy, isolation gone from the inventory.
    mps.withdraw();
    until_all(&mut stream, "Unhealthy").await;
    tokio::time::timeout(WAIT, async {
        while mps.inventory() != [(false, Isolation::None); 2] {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the inventory says isolation is gone");
    // A daemon killed without removing its file: the stale heartbeat counts as gone.
    mps.publish(false, 0);
    until_all(&mut stream, "Healthy").await;
    mps.publish(false, 60);
    until_all(&mut stream, "Unhealthy").await;
    assert!(
        mps.running
            .metrics_text()
            .contains("tessera_device_plugin_mps_ready 0")
    );
    mps.running.stop().await;
}

#[tokio::test]
async fn allocate_gives_a_share_the_mps_pipe_and_shm_beside_its_limits() {
    let mps = Mps::start().await;
    mps.publish(true, 0);
    let mut stream = mps.running.watch().await;
    until_all(&mut stream, "Healthy").await;
    mps.running.pods.set(vec![allocating_pod(
        "infer",
        "2026-01-01T00:00:00Z",
        &[uuid(1)],
        8192,
        250,
    )]);
    let c = mps.allocate(format!("{}::0", uuid(1))).await.unwrap();
    let root = mps.root.path().display().to_string();
    assert_eq!(c.envs["NVIDIA_VISIBLE_DEVICES"], uuid(1));
    assert_eq!(c.envs["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"], "0=8192M");
    assert_eq!(c.envs["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"], "25");
    assert_eq!(c.envs["CUDA_MPS_PIPE_DIRECTORY"], format!("{root}/pipe"));
    let mounts: Vec<(String, String, bool)> = c
        .mounts
        .iter()
        .map(|m| (m.host_path.clone(), m.container_path.clone(), m.read_only))
        .collect();
    assert_eq!(
        mounts,
        [
            (format!("{root}/pipe"), format!("{root}/pipe"), false),
            (format!("{root}/shm"), "/dev/shm".to_string(), false),
        ]
    );
    mps.running.stop().await;
}

#[tokio::test]
async fn allocate_refuses_a_gpu_the_node_lacks_and_one_whose_daemon_is_down() {
    let mps = Mps::start().await;
    mps.publish(true, 0);
    let mut stream = mps.running.watch().await;
    until_all(&mut stream, "Healthy").await;
    // A stale assignment naming a GPU of another node, on slots of this node's GPU 0.
    let stray = "GPU-99999999-9999-9999-9999-999999999999".to_string();
    mps.running.pods.set(vec![allocating_pod(
        "stale",
        "2026-01-01T00:00:00Z",
        std::slice::from_ref(&stray),
        1024,
        100,
    )]);
    let err = mps.allocate(format!("{}::0", uuid(0))).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(
        err.message().contains(&format!("names GPU {stray}")),
        "{}",
        err.message()
    );
    assert!(err.message().contains("ml/stale/main"), "{}", err.message());
    // The daemon goes away between ListAndWatch and Allocate.
    mps.running.pods.set(vec![allocating_pod(
        "late",
        "2026-01-01T00:00:01Z",
        &[uuid(0)],
        1024,
        100,
    )]);
    mps.withdraw();
    until_all(&mut stream, "Unhealthy").await;
    let err = mps.allocate(format!("{}::1", uuid(0))).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(err.message().contains("MPS daemon"), "{}", err.message());
    assert!(
        mps.running.pods.pods()[0]
            .metadata
            .annotations
            .as_ref()
            .unwrap()
            .get("tessera.dev/bind-phase")
            .is_some_and(|p| p == "allocating"),
        "a refused pod is not marked allocated"
    );
    mps.running.stop().await;
}
