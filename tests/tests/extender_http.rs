//! The extender's `filter` and `prioritize` over real HTTP on 127.0.0.1, driven by the bodies a
//! real kube-scheduler sent (tests/fixtures/extender, see its README).
#![allow(clippy::unwrap_used, clippy::panic)] // test helpers fail loudly

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use std::sync::Mutex;
use std::time::Duration;
use tessera_core::ledger::HostCapacity;
use tessera_core::testing;

use tessera_core::annotations;
use tessera_core::keys;
use tessera_extender::{BindFuture, BindTarget, Binder, Config, ExtenderState};
use tessera_tests::http::{post, serve};

/// Records binds; fails them while `fail` is set, as an apiserver refusing the Binding would.
#[derive(Default)]
struct RecordingBinder {
    binds: Mutex<Vec<BindTarget>>,
    fail: Mutex<Option<String>>,
}

impl Binder for RecordingBinder {
    fn bind(&self, target: BindTarget) -> BindFuture<'_> {
        Box::pin(async move {
            if let Some(why) = self.fail.lock().unwrap().clone() {
                return Err(why);
            }
            self.binds.lock().unwrap().push(target);
            Ok(())
        })
    }
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/extender/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// The captured pod asks for `example.dev/gpu-mem: 4`; ours asks the same in Tessera's name, MiB.
fn as_tessera_request(mut body: Value, mem_mib: &str) -> Value {
    for c in body["Pod"]["spec"]["containers"].as_array_mut().unwrap() {
        for key in ["limits", "requests"] {
            let map = c["resources"][key].as_object_mut().unwrap();
            map.remove("example.dev/gpu-mem");
            map.insert("tessera.dev/gpu-mem".into(), Value::String(mem_mib.into()));
        }
    }
    body
}

const TIMEOUT: Duration = Duration::from_secs(300);

/// node-1 full, node-2 half used, node-3 idle with 8 GPUs; node-4 has no GPUs (as captured).
fn state() -> Arc<ExtenderState> {
    state_with(Arc::new(RecordingBinder::default()))
}

/// A state with the fragmentation policy, ready to serve: the tests fill it by hand, as the
/// watches would have listed it.
fn ready_state(slots_per_gpu: u32, binder: Arc<RecordingBinder>) -> Arc<ExtenderState> {
    let config = Config {
        slots_per_gpu,
        reservation_timeout: TIMEOUT,
        heartbeat_max_age: None,
        ..Config::default()
    };
    let state = Arc::new(ExtenderState::new(config, binder));
    state.set_ready(true);
    state
}

fn state_with(binder: Arc<RecordingBinder>) -> Arc<ExtenderState> {
    let state = ready_state(10, binder);
    fill(&state);
    state
}

/// The captured cluster's GPU nodes and what they hold.
fn fill(state: &ExtenderState) {
    state.update(|c| {
        for (name, gpus, zone) in [
            ("node-1", 4, "zone-a"),
            ("node-2", 4, "zone-a"),
            ("node-3", 8, "zone-b"),
        ] {
            c.ledger.upsert_node(
                name,
                Some(zone.into()),
                &testing::gpus(name, gpus, "T4", 16384),
                HostCapacity::untracked(),
            );
        }
        for g in 0..4 {
            testing::hold(
                c.ledger.node_mut("node-1").unwrap(),
                &format!("ml/a{g}"),
                g,
                16000,
                500,
            );
        }
        testing::hold(c.ledger.node_mut("node-2").unwrap(), "ml/b0", 0, 8192, 500);
    });
}

#[tokio::test]
async fn filter_node_names_passes_fitting_nodes_and_gives_reasons() {
    let addr = serve(state()).await;
    let (status, out) = post(
        addr,
        "filter",
        &as_tessera_request(fixture("filter.nodenames.request.json"), "4096"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(out["NodeNames"], serde_json::json!(["node-3", "node-2"]));
    assert!(out.get("Nodes").is_none(), "{out}");
    let why = out["FailedNodes"]["node-1"].as_str().unwrap();
    assert!(
        why.contains("GPU-node-1-0: 384 MiB free, needs 4096"),
        "{why}"
    );
    assert_eq!(
        out["FailedAndUnresolvableNodes"]["node-4"],
        "node node-4 has no Tessera GPU inventory"
    );
    assert_eq!(out["Error"], "");
}

#[tokio::test]
async fn filter_full_nodes_answers_with_the_passing_node_objects() {
    let addr = serve(state()).await;
    let request = as_tessera_request(fixture("filter.nodes.request.json"), "4096");
    let (status, out) = post(addr, "filter", &request).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = out["Nodes"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node-3", "node-2"]);
    assert!(out.get("NodeNames").is_none(), "{out}");
    // The same shape the capture extender answered and kube-scheduler accepted.
    let accepted = fixture("filter.nodes.response.json");
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    for key in keys(&accepted) {
        assert!(out.get(&key).is_some(), "missing {key}");
    }
    let sent = request["Nodes"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["metadata"]["name"] == "node-3")
        .unwrap();
    assert_eq!(
        out["Nodes"]["items"][0]["metadata"]["uid"],
        sent["metadata"]["uid"]
    );
}

#[tokio::test]
async fn prioritize_scores_nodes_on_zero_to_ten_leaving_out_the_lowest() {
    let addr = serve(state()).await;
    let (status, out) = post(
        addr,
        "prioritize",
        &as_tessera_request(fixture("prioritize.nodenames.request.json"), "4096"),
    )
    .await;
    assert_eq!(status, 200);
    let scores: Vec<(String, i64)> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["Host"].as_str().unwrap().to_string(),
                h["Score"].as_i64().unwrap(),
            )
        })
        .collect();
    // A node left out gets nothing from the extender: the lowest, here node-1, which the pod
    // does not fit, and node-4, which the policy ranks as low.
    assert_eq!(
        scores.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        ["node-3", "node-2"]
    );
    assert!(scores.iter().all(|s| (1..=10).contains(&s.1)), "{scores:?}");
    let score = |n: &str| scores.iter().find(|s| s.0 == n).unwrap().1;
    assert_eq!(scores.iter().map(|s| s.1).max(), Some(10));
    assert!(score("node-2") > 0 && score("node-3") > 0);
}

#[tokio::test]
async fn bad_bodies_get_400_and_invalid_pods_an_error_field() {
    let addr = serve(state()).await;
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/filter"))
        .header("content-type", "application/json")
        .body("{\"Pod\": 7}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["Error"]
            .as_str()
            .unwrap()
            .starts_with("undecodable extender request"),
        "{body}"
    );
    let mut request = as_tessera_request(fixture("filter.nodenames.request.json"), "4096");
    request["Pod"]["spec"]["containers"][0]["resources"]["limits"]["tessera.dev/gpu-core"] =
        Value::String("150".into());
    let (status, out) = post(addr, "filter", &request).await;
    assert_eq!(status, 200);
    assert!(
        out["Error"]
            .as_str()
            .unwrap()
            .contains("tessera.dev/gpu-core = 150 is outside 1..=100 percent"),
        "{out}"
    );
}

#[tokio::test]
async fn readyz_and_every_verb_wait_for_synced_caches() {
    let binder = Arc::new(RecordingBinder::default());
    let state = state_with(binder.clone());
    // As a restarted extender is before its watches have listed the cluster.
    state.set_ready(false);
    let addr = serve(state.clone()).await;
    let verb = |name: &'static str, body: Value| async move {
        let resp = reqwest::Client::new()
            .post(format!("http://{addr}/{name}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    };
    let filter = as_tessera_request(fixture("filter.nodes.request.json"), "4096");
    for (name, body) in [
        ("filter", filter.clone()),
        ("prioritize", filter.clone()),
        ("bind", fixture("bind.request.json")),
    ] {
        let (status, text) = verb(name, body).await;
        assert_eq!(status, 503, "{name}: {text}");
        assert!(text.contains("not synced"), "{name}: {text}");
    }
    assert!(
        binder.binds.lock().unwrap().is_empty(),
        "bound while not synced"
    );
    assert!(state.read().ledger.node_of("default/gpu-a").is_none());
    let get = |path: &'static str| async move {
        reqwest::get(format!("http://{addr}{path}"))
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(get("/healthz").await, 200);
    assert_eq!(get("/readyz").await, 503);
    state.set_ready(true);
    assert_eq!(get("/readyz").await, 200);
    assert_eq!(verb("filter", filter).await.0, 200);
}

fn holder_node(state: &ExtenderState, pod: &str) -> Option<String> {
    state.read().ledger.node_of(pod).map(|n| n.name.clone())
}

#[tokio::test]
async fn bind_writes_the_assignment_then_the_binding_and_keeps_the_share() {
    let binder = Arc::new(RecordingBinder::default());
    let state = state_with(binder.clone());
    let addr = serve(state.clone()).await;
    post(
        addr,
        "filter",
        &as_tessera_request(fixture("filter.nodes.request.json"), "4096"),
    )
    .await;
    let (status, out) = post(addr, "bind", &fixture("bind.request.json")).await;
    assert_eq!((status, out["Error"].as_str()), (200, Some("")), "{out}");
    let binds = binder.binds.lock().unwrap().clone();
    assert_eq!(binds.len(), 1);
    let target = &binds[0];
    assert_eq!(
        (
            target.namespace.as_str(),
            target.name.as_str(),
            target.node.as_str()
        ),
        ("default", "gpu-a", "node-2")
    );
    assert_eq!(target.uid, "561b2450-3703-4417-9511-ecdccc312776");
    assert_eq!(
        target.annotations[keys::ANNOTATION_BIND_PHASE],
        "allocating"
    );
    let assignment =
        annotations::decode_assignment(&target.annotations[keys::ANNOTATION_GPU_ASSIGNMENT])
            .unwrap();
    assert_eq!(assignment.node, "node-2");
    assert_eq!(assignment.containers[0].gpus[0].mem_mib, 4096);
    assert!(
        assignment.containers[0].gpus[0]
            .uuid
            .starts_with("GPU-node-2-")
    );
    assert_eq!(
        holder_node(&state, "default/gpu-a").as_deref(),
        Some("node-2")
    );
}

#[tokio::test]
async fn a_failed_binding_undoes_the_reservation_and_a_retry_succeeds() {
    let binder = Arc::new(RecordingBinder::default());
    *binder.fail.lock().unwrap() = Some("pods \"gpu-a\" not found".into());
    let state = state_with(binder.clone());
    let before = state.read().ledger.clone();
    let addr = serve(state.clone()).await;
    post(
        addr,
        "filter",
        &as_tessera_request(fixture("filter.nodes.request.json"), "4096"),
    )
    .await;
    let (status, out) = post(addr, "bind", &fixture("bind.request.json")).await;
    assert_eq!(status, 200);
    assert_eq!(
        out["Error"],
        "binding default/gpu-a to node-2: pods \"gpu-a\" not found"
    );
    assert!(
        state.read().ledger.same_state(&before),
        "nothing half-applied"
    );
    *binder.fail.lock().unwrap() = None;
    let (_, out) = post(addr, "bind", &fixture("bind.request.json")).await;
    assert_eq!(
        out["Error"], "",
        "the pod is remembered for kube-scheduler's retry"
    );
    assert_eq!(
        holder_node(&state, "default/gpu-a").as_deref(),
        Some("node-2")
    );
}

#[tokio::test]
async fn two_binds_never_get_the_same_share_and_unseen_pods_are_refused() {
    let binder = Arc::new(RecordingBinder::default());
    let state = state_with(binder.clone());
    let addr = serve(state.clone()).await;
    // Each pod wants 12 GiB: node-2 has three idle 16 GiB GPUs and one half used.
    let mut pods = Vec::new();
    for i in 0..4 {
        let mut request = as_tessera_request(fixture("filter.nodenames.request.json"), "12288");
        request["Pod"]["metadata"]["name"] = Value::String(format!("p{i}"));
        request["Pod"]["metadata"]["uid"] = Value::String(format!("uid-{i}"));
        post(addr, "filter", &request).await;
        pods.push(serde_json::json!({"PodName": format!("p{i}"), "PodNamespace": "default", "PodUID": format!("uid-{i}"), "Node": "node-2"}));
    }
    let mut errors = Vec::new();
    for bind in &pods {
        let (_, out) = post(addr, "bind", bind).await;
        errors.push(out["Error"].as_str().unwrap().to_string());
    }
    assert_eq!(errors[..3], ["", "", ""]);
    assert!(
        errors[3].starts_with(
            "cannot bind default/p3 to node-2: node node-2: container \"main\" needs 1 GPU(s)"
        ),
        "{}",
        errors[3]
    );
    assert_eq!(binder.binds.lock().unwrap().len(), 3);
    let uuids: std::collections::BTreeSet<String> = binder
        .binds
        .lock()
        .unwrap()
        .iter()
        .map(|t| {
            annotations::decode_assignment(&t.annotations[keys::ANNOTATION_GPU_ASSIGNMENT])
                .unwrap()
                .containers[0]
                .gpus[0]
                .uuid
                .clone()
        })
        .collect();
    assert_eq!(uuids.len(), 3, "three distinct GPUs");
    let unseen = serde_json::json!({"PodName": "ghost", "PodNamespace": "default", "PodUID": "uid-ghost", "Node": "node-2"});
    let (_, out) = post(addr, "bind", &unseen).await;
    assert_eq!(
        out["Error"],
        "pod default/ghost (uid uid-ghost) was not filtered by this extender"
    );
}

#[tokio::test]
async fn a_reservation_whose_pod_never_shows_up_is_released_after_the_timeout() {
    let state = state();
    let addr = serve(state.clone()).await;
    post(
        addr,
        "filter",
        &as_tessera_request(fixture("filter.nodes.request.json"), "4096"),
    )
    .await;
    let (_, out) = post(addr, "bind", &fixture("bind.request.json")).await;
    assert_eq!(out["Error"], "");
    let now = state.now_ms();
    assert!(state.expire_reservations(now).is_empty(), "not yet");
    let later = now + TIMEOUT.as_millis() as u64 + 1;
    assert_eq!(
        state.expire_reservations(later),
        vec!["default/gpu-a".to_string()]
    );
    assert_eq!(holder_node(&state, "default/gpu-a"), None);
}

mod concurrent {
    use std::collections::HashMap;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// Three empty nodes of two 16 GiB GPUs.
    fn empty_state(binder: Arc<RecordingBinder>) -> Arc<ExtenderState> {
        let state = ready_state(4, binder);
        state.update(|c| {
            for name in ["n0", "n1", "n2"] {
                c.ledger.upsert_node(
                    name,
                    None,
                    &testing::gpus(name, 2, "T4", 16384),
                    HostCapacity::untracked(),
                );
            }
        });
        state
    }

    fn pod(i: usize, mem: u64, core: u32) -> Value {
        json!({
            "metadata": {"name": format!("p{i}"), "namespace": "ml", "uid": format!("uid-{i}")},
            "spec": {"containers": [{"name": "main", "resources": {"limits": {
                "tessera.dev/gpu-mem": mem.to_string(),
                "tessera.dev/gpu-core": core.to_string(),
            }}}]}
        })
    }

    /// One pod's scheduling cycle as kube-scheduler runs it, racing the others.
    async fn cycle(addr: SocketAddr, i: usize, mem: u64, core: u32, pick: usize) -> bool {
        let nodes = ["n0", "n1", "n2"];
        let (_, filtered) = post(
            addr,
            "filter",
            &json!({"Pod": pod(i, mem, core), "NodeNames": nodes}),
        )
        .await;
        let passed: Vec<String> = serde_json::from_value(filtered["NodeNames"].clone()).unwrap();
        // Bind to a node that passed, or — as a stale scheduler cache would — to any node.
        let node = passed
            .get(pick % passed.len().max(1))
            .cloned()
            .unwrap_or_else(|| nodes[pick % 3].to_string());
        let bind = json!({"PodName": format!("p{i}"), "PodNamespace": "ml",
                          "PodUID": format!("uid-{i}"), "Node": node});
        let (_, out) = post(addr, "bind", &bind).await;
        out["Error"] == ""
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Filters and binds racing on a multi-threaded server never hand out more memory,
        /// compute or slots than a GPU has, and the ledger holds exactly the successful binds.
        #[test]
        fn concurrent_filters_and_binds_never_over_commit(
            pods in prop::collection::vec((1..16384u64, 1..=100u32, 0..6usize), 1..30)
        ) {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .unwrap();
            let (ok, binds, state) = rt.block_on(async {
                let binder = Arc::new(RecordingBinder::default());
                let state = empty_state(binder.clone());
                let addr = serve(state.clone()).await;
                let tasks: Vec<_> = pods
                    .iter()
                    .enumerate()
                    .map(|(i, &(mem, core, pick))| tokio::spawn(cycle(addr, i, mem, core, pick)))
                    .collect();
                let mut ok = 0;
                for t in tasks {
                    ok += usize::from(t.await.unwrap());
                }
                let binds = binder.binds.lock().unwrap().clone();
                (ok, binds, state)
            });
            prop_assert_eq!(ok, binds.len());
            prop_assert_eq!(state.read().ledger.pod_count(), ok);
            let mut per_gpu: HashMap<String, (u64, u32, u32)> = HashMap::new();
            for b in &binds {
                let a = annotations::decode_assignment(&b.annotations[keys::ANNOTATION_GPU_ASSIGNMENT]).unwrap();
                prop_assert_eq!(&a.node, &b.node);
                for s in a.shares() {
                    let e = per_gpu.entry(s.uuid.clone()).or_default();
                    e.0 += s.mem_mib;
                    e.1 += s.core_milli;
                    e.2 += 1;
                }
            }
            for (gpu, (mem, core, slots)) in per_gpu {
                prop_assert!(mem <= 16384 && core <= 1000 && slots <= 4,
                    "{} over-committed: {} MiB, {} milli, {} slots", gpu, mem, core, slots);
            }
        }
    }
}

/// `iso` runs a single-user MPS server already serving UID 1000; `bare` has no live isolation.
fn isolation_state() -> Arc<ExtenderState> {
    use tessera_core::inventory::Isolation;
    use tessera_core::ledger::{ContainerPlacement, Holding, Placement, Share};
    use tessera_core::request::RunAs;
    let state = ready_state(10, Arc::new(RecordingBinder::default()));
    state.update(|c| {
        for (name, isolation) in [("iso", Isolation::Mps), ("bare", Isolation::None)] {
            let mut inventory = testing::gpus(name, 2, "T4", 16384);
            for g in &mut inventory.gpus {
                g.isolation = isolation;
            }
            c.ledger
                .upsert_node(name, None, &inventory, HostCapacity::untracked());
        }
        let placement = Placement {
            init: Vec::new(),
            containers: vec![ContainerPlacement {
                container: "main".into(),
                shares: vec![Share {
                    gpu: 0,
                    mem_mib: 4096,
                    core_milli: 250,
                }],
            }],
        };
        let holding = Holding {
            placement,
            cpu_milli: 0,
            mem_mib: 0,
            run_as: RunAs::Uid(1000),
        };
        c.ledger
            .node_mut("iso")
            .unwrap()
            .apply("ml/first", holding)
            .unwrap();
    });
    state
}

/// The captured filter body asking for a 4 GiB share, run as `uid`, on nodes `iso` and `bare`.
fn share_as(uid: i64) -> Value {
    let mut body = as_tessera_request(fixture("filter.nodenames.request.json"), "4096");
    body["NodeNames"] = serde_json::json!(["iso", "bare"]);
    body["Pod"]["spec"]["securityContext"] = serde_json::json!({"runAsUser": uid});
    // Another pod per user: the extender remembers a pod's request by its UID.
    body["Pod"]["metadata"]["uid"] = Value::String(format!("pod-of-{uid}"));
    body["Pod"]["metadata"]["name"] = Value::String(format!("pod-of-{uid}"));
    body
}

#[tokio::test]
async fn filter_places_shares_only_where_mps_isolates_them_and_keeps_single_user_nodes_to_one_uid()
{
    let addr = serve(isolation_state()).await;
    let (status, out) = post(addr, "filter", &share_as(1000)).await;
    assert_eq!(status, 200);
    assert_eq!(out["NodeNames"], serde_json::json!(["iso"]));
    let bare = out["FailedNodes"]["bare"].as_str().unwrap();
    assert!(
        bare.contains("no live MPS isolation, whole GPUs only"),
        "{bare}"
    );
    let (_, out) = post(addr, "filter", &share_as(2000)).await;
    assert_eq!(out["NodeNames"], serde_json::json!([]));
    let iso = out["FailedNodes"]["iso"].as_str().unwrap();
    assert!(
        iso.contains("serves UID 1000; this pod runs as UID 2000"),
        "{iso}"
    );
}

/// The Lease as the watch delivers it: `holder` renewed it just now, in its `term`.
fn lease(holder: &str, term: i32) -> k8s_openapi::api::coordination::v1::Lease {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "tessera-extender", "namespace": "tessera-system"},
        "spec": {"holderIdentity": holder, "leaseTransitions": term, "leaseDurationSeconds": 10,
                 "renewTime": MicroTime(jiff::Timestamp::now())}
    }))
    .unwrap()
}

#[tokio::test]
async fn a_standby_answers_no_verb_until_it_leads_then_binds_as_its_term() {
    use tessera_extender::leader::Leadership;
    let binder = Arc::new(RecordingBinder::default());
    let config = Config {
        reservation_timeout: TIMEOUT,
        heartbeat_max_age: None,
        ..Config::default()
    };
    let leadership = Arc::new(Leadership::elected("ext-b"));
    let state =
        Arc::new(ExtenderState::new(config, binder.clone()).with_leadership(leadership.clone()));
    state.set_ready(true);
    fill(&state);
    let addr = serve(state.clone()).await;
    let filter = as_tessera_request(fixture("filter.nodes.request.json"), "4096");
    let verb = |name: &'static str, body: Value| async move {
        let resp = reqwest::Client::new()
            .post(format!("http://{addr}/{name}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    };
    let get = |path: &'static str| async move {
        let resp = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    };

    // Another replica holds the Lease: warm and ready, but every verb is refused, naming it.
    leadership.observe(Some(&lease("ext-a", 4)));
    for (name, body) in [
        ("filter", filter.clone()),
        ("prioritize", filter.clone()),
        ("bind", fixture("bind.request.json")),
    ] {
        let (status, text) = verb(name, body).await;
        assert_eq!(status, 503, "{name}: {text}");
        assert!(
            text.contains("standby") && text.contains("ext-a"),
            "{name}: {text}"
        );
    }
    let (status, text) = get("/readyz").await;
    assert_eq!(status, 200, "a standby is ready: readiness does not route");
    assert!(text.contains("standby"), "{text}");
    assert!(
        get("/metrics")
            .await
            .1
            .contains("tessera_extender_leader 0")
    );
    assert!(binder.binds.lock().unwrap().is_empty());

    // A bind of the old leader's term is held in flight for gpu-a; then this replica wins.
    state.update(|c| {
        let index = c.ledger.node_index("node-3").unwrap();
        use tessera_core::ledger::{ContainerPlacement, Holding, Placement, Share};
        let holding = Holding {
            placement: Placement {
                init: Vec::new(),
                containers: vec![ContainerPlacement {
                    container: "main".into(),
                    shares: vec![Share {
                        gpu: 0,
                        mem_mib: 16000,
                        core_milli: 1000,
                    }],
                }],
            },
            cpu_milli: 0,
            mem_mib: 0,
            run_as: tessera_core::request::RunAs::Unstated,
        };
        c.reservations
            .reserve(&mut c.ledger, "default/gpu-a", index, holding, u64::MAX)
            .unwrap();
    });
    leadership.observe(Some(&lease("ext-b", 5)));
    leadership.set_won(true);
    assert!(
        get("/metrics")
            .await
            .1
            .contains("tessera_extender_leader 1")
    );
    // kube-scheduler places gpu-a anew: its earlier bind is over and stops counting.
    let (status, text) = verb("filter", filter).await;
    assert_eq!(status, 200, "{text}");
    assert!(!state.read().reservations.is_pending("default/gpu-a"));
    let (status, out) = post(addr, "bind", &fixture("bind.request.json")).await;
    assert_eq!((status, out["Error"].as_str()), (200, Some("")), "{out}");
    let binds = binder.binds.lock().unwrap().clone();
    assert_eq!(
        binds[0].annotations[keys::ANNOTATION_ASSIGNED_BY],
        "ext-b@5"
    );
    assert_eq!(
        (binds[0].writer.holder.as_str(), binds[0].writer.term),
        ("ext-b", 5)
    );

    // Deposed (another holder seen): refused again, whatever the election last said.
    leadership.observe(Some(&lease("ext-c", 6)));
    assert_eq!(verb("bind", fixture("bind.request.json")).await.0, 503);
}

#[tokio::test]
async fn metrics_come_as_openmetrics_to_prometheus_and_as_text_to_everyone_else() {
    let addr = serve(state()).await;
    let filter = as_tessera_request(fixture("filter.nodenames.request.json"), "8192");
    assert_eq!(post(addr, "filter", &filter).await.0, 200);
    let scrape = |accept: Option<&'static str>| async move {
        let mut req = reqwest::Client::new().get(format!("http://{addr}/metrics"));
        if let Some(accept) = accept {
            req = req.header("accept", accept);
        }
        let resp = req.send().await.unwrap();
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        (ct, resp.text().await.unwrap())
    };
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (ct, open) = scrape(Some(prometheus)).await;
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(open.ends_with("# EOF\n"), "{open}");
    let (ct, text) = scrape(None).await;
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    assert!(!text.contains("# EOF"));
    assert!(
        text.contains("# TYPE tessera_extender_requests_total counter"),
        "{text}"
    );
    // The captured cluster's node-1: four shares of 16,000 MiB and half a GPU each.
    assert!(
        text.contains(
            "tessera_extender_node_gpu_memory_allocated_bytes{node=\"node-1\",model=\"T4\"} 67108864000"
        ),
        "{text}"
    );
    assert!(text.contains(
        "tessera_extender_node_gpu_compute_allocated_gpus{node=\"node-1\",model=\"T4\"} 2.0"
    ));
    tessera_tests::promtool::assert_clean(&text);
}
