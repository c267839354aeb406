//! `/preempt` with full victim pods (kube-scheduler's form for extenders that do not cache
//! nodes) is decoded keeping only each victim's UID: the peak memory of decoding a 3–4 MB body,
//! counted by a global allocator, stays a fraction of the body for whole pods and a bounded
//! multiple of it for the smallest victims a body can hold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use tessera_extender::wire::ExtenderPreemptionArgs;
use tessera_tests::bounds::{Counting, cost_of};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn victim_pods_cost_a_bounded_multiple_of_their_body() {
    // One test: the counters are the whole process's.
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/extender/filter.nodenames.request.json"
    ))
    .unwrap();
    let filter: serde_json::Value = serde_json::from_str(&fixture).unwrap();
    let pod = filter["Pod"].clone();
    // Victims as kube-scheduler sends them: whole pods, here with labels and annotations.
    let mut victim = pod.clone();
    victim["metadata"]["labels"] = json!(
        (0..20)
            .map(|i| (format!("label-{i}"), json!("v".repeat(20))))
            .collect::<serde_json::Map<_, _>>()
    );
    let victims: Vec<serde_json::Value> = (0..1500)
        .map(|i| {
            let mut v = victim.clone();
            v["metadata"]["uid"] = json!(format!("victim-{i}"));
            v
        })
        .collect();
    let body = serde_json::to_vec(&json!({
        "Pod": pod,
        "NodeNameToVictims": {"node-a": {"Pods": victims, "NumPDBViolations": 0}},
    }))
    .unwrap();
    assert!(body.len() > 2_000_000, "{} bytes", body.len());

    let (args, peak, _) =
        cost_of(|| -> ExtenderPreemptionArgs { serde_json::from_slice(&body).unwrap() });
    let victims = &args.node_name_to_victims.as_ref().unwrap()["node-a"].pods;
    assert_eq!(victims.len(), 1500);
    assert_eq!(victims[7].metadata.uid.as_deref(), Some("victim-7"));
    println!("decoding a {} byte body peaked at {peak} bytes", body.len());
    assert!(
        peak < body.len() / 4,
        "decoding {} bytes peaked at {peak}",
        body.len()
    );

    // The worst shape per body byte: victims of three bytes each (`{},`).
    let victims = vec![json!({}); 1_000_000];
    let body = serde_json::to_vec(&json!({
        "Pod": {"metadata": {"name": "p", "uid": "u"}},
        "NodeNameToVictims": {"node-a": {"Pods": victims, "NumPDBViolations": 0}},
    }))
    .unwrap();
    let (args, peak, _) =
        cost_of(|| -> ExtenderPreemptionArgs { serde_json::from_slice(&body).unwrap() });
    assert_eq!(
        args.node_name_to_victims.unwrap()["node-a"].pods.len(),
        1_000_000
    );
    println!(
        "decoding a {} byte body of empty victims peaked at {peak} bytes",
        body.len()
    );
    assert!(
        peak < 32 * body.len(),
        "decoding {} bytes peaked at {peak}",
        body.len()
    );
}
