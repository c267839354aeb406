//! Init containers and native sidecars through the extender over HTTP, with the captured
//! kube-scheduler bodies: a sidecar's share is placed, bound and accounted for the pod's life
//! (a GPU it fills is not offered again), and an ordinary init container's share is charged by
//! Kubernetes' init rule (the larger phase, not the sum).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tessera_core::annotations;
use tessera_core::keys;
use tessera_core::ledger::HostCapacity;
use tessera_core::testing;
use tessera_extender::{BindFuture, BindTarget, Binder, Config, ExtenderState};
use tessera_tests::http::{post, serve};

/// Records binds, as an apiserver accepting every Binding would.
#[derive(Default)]
struct RecordingBinder {
    binds: Mutex<Vec<BindTarget>>,
}

impl Binder for RecordingBinder {
    fn bind(&self, target: BindTarget) -> BindFuture<'_> {
        Box::pin(async move {
            self.binds.lock().unwrap().push(target);
            Ok(())
        })
    }
}

/// A ready extender over one node with one 16 GiB GPU.
fn one_gpu(binder: Arc<RecordingBinder>) -> Arc<ExtenderState> {
    let config = Config {
        reservation_timeout: Duration::from_secs(300),
        heartbeat_max_age: None,
        ..Config::default()
    };
    let state = Arc::new(ExtenderState::new(config, binder));
    state.update(|c| {
        c.ledger.upsert_node(
            "node-1",
            Some("zone-a".into()),
            &testing::gpus("node-1", 1, "T4", 16384),
            HostCapacity::untracked(),
        );
    });
    state.set_ready(true);
    state
}

/// The captured filter body for pod `name` (its own UID), asking `main_mib` in its app
/// container and `init` (JSON init containers) besides, offered node-1 only.
fn filter_body(name: &str, main_mib: &str, init: Value) -> Value {
    let path = format!(
        "{}/fixtures/extender/filter.nodenames.request.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut body: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let pod = &mut body["Pod"];
    pod["metadata"]["name"] = json!(name);
    pod["metadata"]["uid"] = json!(format!("uid-{name}"));
    pod["spec"]["containers"][0]["resources"] = mem(main_mib);
    pod["spec"]["initContainers"] = init;
    body["NodeNames"] = json!(["node-1"]);
    body
}

fn mem(mib: &str) -> Value {
    json!({"limits": {"tessera.dev/gpu-mem": mib}, "requests": {"tessera.dev/gpu-mem": mib}})
}

/// Filters, and binds when node-1 passes; the filter's answer otherwise.
async fn filter_then_bind(addr: std::net::SocketAddr, body: &Value) -> Result<(), Value> {
    let (_, out) = post(addr, "filter", body).await;
    if out["NodeNames"] != json!(["node-1"]) {
        return Err(out);
    }
    let pod = &body["Pod"]["metadata"];
    let bind = json!({"PodName": pod["name"], "PodNamespace": pod["namespace"],
        "PodUID": pod["uid"], "Node": "node-1"});
    let (status, out) = post(addr, "bind", &bind).await;
    assert_eq!((status, out["Error"].as_str()), (200, Some("")), "{out}");
    Ok(())
}

fn assignment_of(binder: &RecordingBinder, name: &str) -> annotations::Assignment {
    let binds = binder.binds.lock().unwrap();
    let target = binds.iter().find(|b| b.name == name).unwrap();
    annotations::decode_assignment(&target.annotations[keys::ANNOTATION_GPU_ASSIGNMENT]).unwrap()
}

fn mem_free(state: &ExtenderState) -> u64 {
    state.read().ledger.node("node-1").unwrap().gpus[0].mem_free_mib
}

#[tokio::test]
async fn a_gpu_filled_by_a_sidecar_share_is_not_offered_again() {
    let binder = Arc::new(RecordingBinder::default());
    let state = one_gpu(binder.clone());
    let addr = serve(state.clone()).await;
    let sidecar = json!([{"name": "agent", "image": "registry.example/agent:1",
        "restartPolicy": "Always", "resources": mem("12288")}]);
    filter_then_bind(addr, &filter_body("with-sidecar", "4096", sidecar))
        .await
        .unwrap();
    let assignment = assignment_of(&binder, "with-sidecar");
    let names: Vec<(&str, bool)> = assignment
        .containers
        .iter()
        .map(|c| (c.container.as_str(), c.init))
        .collect();
    assert_eq!(names, [("agent", false), ("main", false)]);
    assert_eq!(mem_free(&state), 0, "the sidecar's share is accounted");
    let next = filter_body("next", "1024", json!([]));
    let out = filter_then_bind(addr, &next).await.unwrap_err();
    let why = out["FailedNodes"]["node-1"].as_str().unwrap();
    assert!(why.contains("0 MiB free, needs 1024"), "{why}");
}

#[tokio::test]
async fn an_init_container_share_is_charged_by_the_init_rule() {
    let binder = Arc::new(RecordingBinder::default());
    let state = one_gpu(binder.clone());
    let addr = serve(state.clone()).await;
    // 14000 MiB while warm runs, then 4096 MiB: 14000 at once, not 18096 (which would not fit).
    let init = json!([{"name": "warm", "image": "registry.example/warm:1",
        "resources": mem("14000")}]);
    filter_then_bind(addr, &filter_body("with-init", "4096", init))
        .await
        .unwrap();
    let assignment = assignment_of(&binder, "with-init");
    let names: Vec<(&str, bool)> = assignment
        .containers
        .iter()
        .map(|c| (c.container.as_str(), c.init))
        .collect();
    assert_eq!(names, [("warm", true), ("main", false)]);
    assert_eq!(mem_free(&state), 16384 - 14000);
}
