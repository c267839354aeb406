//! The extender's `preempt`, heartbeat gate and metrics over real HTTP on 127.0.0.1, with the
//! state filled the way the watches fill it (node and pod facts).
#![allow(clippy::unwrap_used, clippy::panic)] // test helpers fail loudly

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_core::annotations::{Assignment, ContainerAssignment, GpuShare};
use tessera_core::cluster::{NodeFacts, PodFacts};
use tessera_core::testing;
use tessera_extender::{BindFuture, BindTarget, Binder, Config, ExtenderState};
use tessera_tests::http::{post_ok as post, serve};

struct NoBinds;

impl Binder for NoBinds {
    fn bind(&self, _: BindTarget) -> BindFuture<'_> {
        Box::pin(async { Err("no binds in this test".to_string()) })
    }
}

fn node(name: &str, heartbeat: Option<i64>) -> NodeFacts {
    NodeFacts {
        name: name.into(),
        zone: None,
        inventory: testing::gpus(name, 1, "T4", 16384),
        inventory_error: None,
        heartbeat,
    }
}

fn holder(name: &str, node: &str, mem_mib: u64, priority: i32) -> PodFacts {
    PodFacts {
        key: format!("ml/{name}"),
        uid: format!("uid-{name}"),
        priority,
        node: Some(node.into()),
        assignment: Some(Assignment {
            node: node.into(),
            containers: vec![ContainerAssignment {
                container: "main".into(),
                init: false,
                gpus: vec![GpuShare {
                    uuid: format!("GPU-{node}-0"),
                    mem_mib,
                    core_milli: 200,
                }],
            }],
        }),
        assignment_error: None,
        group: None,
        terminal: false,
        run_as: tessera_core::request::RunAs::Unstated,
        origin: tessera_core::cluster::Origin::default(),
    }
}

fn now() -> i64 {
    tessera_extender::clock::unix_secs()
}

/// n1 and n2 fresh, n3 silent for an hour. n1: low-priority small shares and one big one; n2:
/// one share as important as the preemptor.
fn state() -> Arc<ExtenderState> {
    let config = Config {
        reservation_timeout: Duration::from_secs(60),
        heartbeat_max_age: Some(Duration::from_secs(120)),
        ..Config::default()
    };
    let state = Arc::new(ExtenderState::new(config, Arc::new(NoBinds)));
    // Filled by hand, as the watches would have listed it.
    state.set_ready(true);
    state.update(|c| {
        c.apply_node(node("n1", Some(now())));
        c.apply_node(node("n2", Some(now())));
        c.apply_node(node("n3", Some(now() - 3600)));
        for p in [
            holder("small-a", "n1", 2048, 0),
            holder("small-b", "n1", 2048, 0),
            holder("big", "n1", 12288, 1),
            holder("peer", "n2", 16384, 100),
        ] {
            assert!(c.apply_pod(p).is_empty());
        }
    });
    state
}

fn pod(mem: &str, priority: i32) -> Value {
    json!({
        "metadata": {"name": "urgent", "namespace": "ml", "uid": "uid-urgent"},
        "spec": {
            "priority": priority,
            "containers": [{
                "name": "main",
                "image": "local/app:1",
                "resources": {"limits": {"tessera.dev/gpu-mem": mem}}
            }]
        }
    })
}

#[tokio::test]
async fn preempt_names_the_fewest_lowest_priority_shares_and_drops_hopeless_nodes() {
    let addr = serve(state()).await;
    let body = json!({
        "Pod": pod("12288", 50),
        "NodeNameToVictims": null,
        "NodeNameToMetaVictims": {
            "n1": {"Pods": [], "NumPDBViolations": 0},
            "n2": {"Pods": [], "NumPDBViolations": 0}
        }
    });
    let out = post(addr, "preempt", &body).await;
    // One 12 GiB share of priority 1 beats two 2 GiB shares of priority 0 (not enough anyway);
    // n2's holder is more important than the preemptor, so n2 is left out.
    assert_eq!(
        out,
        json!({"NodeNameToMetaVictims": {"n1": {"Pods": [{"UID": "uid-big"}], "NumPDBViolations": 0}}})
    );
}

#[tokio::test]
async fn preempt_keeps_kube_schedulers_victims_and_adds_only_what_is_missing() {
    let addr = serve(state()).await;
    let body = json!({
        "Pod": pod("4096", 50),
        "NodeNameToMetaVictims": {
            "n1": {"Pods": [{"UID": "uid-small-a"}, {"UID": "not-ours"}], "NumPDBViolations": 1}
        }
    });
    let out = post(addr, "preempt", &body).await;
    // Freeing small-a (2 GiB) is not enough for 4 GiB: one more low-priority share goes.
    let victims = &out["NodeNameToMetaVictims"]["n1"];
    assert_eq!(victims["NumPDBViolations"], 1);
    assert_eq!(
        victims["Pods"],
        json!([{"UID": "uid-small-a"}, {"UID": "not-ours"}, {"UID": "uid-small-b"}])
    );
}

#[tokio::test]
async fn a_node_whose_device_plugin_went_quiet_offers_no_gpu() {
    let state = state();
    state.update(|c| {
        c.apply_pod(PodFacts {
            terminal: true,
            run_as: tessera_core::request::RunAs::Unstated,
            origin: tessera_core::cluster::Origin::default(),
            ..holder("peer", "n2", 1, 0)
        })
    });
    let addr = serve(state).await;
    let body = json!({"Pod": pod("1024", 0), "NodeNames": ["n2", "n3"], "Nodes": null});
    let out = post(addr, "filter", &body).await;
    assert_eq!(out["NodeNames"], json!(["n2"]));
    let why = out["FailedNodes"]["n3"].as_str().unwrap();
    assert!(
        why.starts_with("GPU inventory heartbeat of node n3 is 36"),
        "{why}"
    );
    assert!(why.ends_with("old (limit 120s)"), "{why}");
}

#[tokio::test]
async fn metrics_count_verbs_and_show_the_state() {
    let addr = serve(state()).await;
    let body = json!({"Pod": pod("1024", 0), "NodeNames": ["n1"], "Nodes": null});
    post(addr, "filter", &body).await;
    post(addr, "filter", &body).await;
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"tessera_extender_requests_total{verb="filter",result="ok"} 2"#),
        "{text}"
    );
    assert!(text.contains("tessera_extender_nodes 3"), "{text}");
    assert!(text.contains("tessera_extender_tracked_pods 4"), "{text}");
    assert!(
        text.contains(r#"tessera_extender_request_duration_seconds_count{verb="filter"} 2"#),
        "{text}"
    );
}
