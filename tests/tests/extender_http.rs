//! The extender's `filter` and `prioritize` over real HTTP on 127.0.0.1, driven by the bodies a
//! real kube-scheduler sent (tests/fixtures/extender, see its README).
#![allow(clippy::unwrap_used, clippy::panic)] // test helpers fail loudly

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use tessera_core::ledger::HostCapacity;
use tessera_core::request::Translation;
use tessera_core::score::Policy;
use tessera_core::testing;
use tessera_extender::{Config, ExtenderState, router};

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

/// node-1 full, node-2 half used, node-3 idle with 8 GPUs; node-4 has no GPUs (as captured).
fn state() -> Arc<ExtenderState> {
    let state = Arc::new(ExtenderState::new(Config {
        policy: Policy::Fragmentation,
        slots_per_gpu: 10,
        translation: Translation::default(),
    }));
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
    state
}

async fn serve(state: Arc<ExtenderState>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    addr
}

async fn post(addr: SocketAddr, verb: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/{verb}"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
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
async fn prioritize_scores_every_node_on_zero_to_ten() {
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
    assert_eq!(
        scores.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        ["node-1", "node-3", "node-4", "node-2"]
    );
    assert!(scores.iter().all(|s| (0..=10).contains(&s.1)), "{scores:?}");
    let score = |n: &str| scores.iter().find(|s| s.0 == n).unwrap().1;
    assert_eq!(score("node-1"), 0, "a node the pod does not fit ranks last");
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
async fn readyz_waits_for_synced_caches() {
    let state = state();
    let addr = serve(state.clone()).await;
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
}
