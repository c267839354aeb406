//! A property of the extender's verbs, for arbitrary `ExtenderArgs` shaped like the captured
//! ones (candidate names known and unknown, containers asking for GPU shares with valid and
//! invalid quantities, filler annotations): decoding, filtering, prioritizing and encoding one
//! request peaks at most at 8× the body plus 2 MiB of heap, and at most 50 ms plus 5 µs per body
//! byte of CPU (debug build), against 64 GPU nodes. A quadratic path or an answer that outgrows
//! its input fails it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use tessera_core::ledger::HostCapacity;
use tessera_core::testing;
use tessera_extender::wire::ExtenderArgs;
use tessera_extender::{BindFuture, BindTarget, Binder, Config, ExtenderState};
use tessera_tests::bounds::{Counting, cost_of};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const NODES: usize = 64;

struct Binds;

impl Binder for Binds {
    fn bind(&self, _: BindTarget) -> BindFuture<'_> {
        Box::pin(async { Ok(()) })
    }
}

fn state() -> ExtenderState {
    let config = Config {
        heartbeat_max_age: None,
        ..Config::default()
    };
    let state = ExtenderState::new(config, Arc::new(Binds));
    state.update(|c| {
        for i in 0..NODES {
            let name = format!("node-{i}");
            c.ledger.upsert_node(
                &name,
                None,
                &testing::gpus(&name, 8, "H100", 81920),
                HostCapacity::untracked(),
            );
        }
    });
    state.set_ready(true);
    state
}

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/extender/filter.nodenames.request.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const RESOURCES: [&str; 6] = [
    "tessera.dev/gpu",
    "tessera.dev/gpu-mem",
    "tessera.dev/gpu-core",
    "aliyun.com/gpu-mem",
    "nvidia.com/gpumem",
    "cpu",
];

fn container() -> impl Strategy<Value = Value> {
    (
        "[a-z][a-z0-9-]{0,62}",
        prop::collection::btree_map(
            prop::sample::select(RESOURCES.to_vec()),
            prop_oneof!["[0-9]{1,6}", "[0-9]{1,3}(Mi|Gi|m)", "[0-9a-zA-Z.+-]{0,12}"],
            0..4,
        ),
    )
        .prop_map(|(name, limits)| json!({"name": name, "image": "app:1", "resources": {"limits": limits}}))
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(
            prop_oneof![
                (0..NODES * 2).prop_map(|i| format!("node-{i}")),
                "[a-z0-9.-]{1,253}",
            ],
            0..3000,
        ),
        prop::collection::vec(container(), 1..40),
        0usize..50_000,
    )
        .prop_map(|(names, containers, filler)| {
            let mut args = fixture();
            args["NodeNames"] = json!(names);
            args["Pod"]["spec"]["containers"] = json!(containers);
            args["Pod"]["metadata"]["annotations"] =
                json!({"example.dev/filler": "f".repeat(filler)});
            serde_json::to_vec(&args).unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn filter_and_prioritize_cost_a_bounded_multiple_of_the_body(body in body()) {
        let state = state();
        let (answers, peak, cpu) = cost_of(|| {
            let args: ExtenderArgs<'_> = serde_json::from_slice(&body).unwrap();
            let filtered = serde_json::to_vec(&tessera_extender::filter::filter(&state, args)).unwrap();
            let args: ExtenderArgs<'_> = serde_json::from_slice(&body).unwrap();
            let scored = serde_json::to_vec(&tessera_extender::prioritize::prioritize(&state, args)).unwrap();
            (filtered, scored)
        });
        prop_assert!(!answers.0.is_empty() && !answers.1.is_empty());
        let heap_bound = 8 * body.len() + (2 << 20);
        prop_assert!(peak <= heap_bound, "{} byte body peaked at {peak} bytes", body.len());
        let cpu_bound = Duration::from_millis(50) + Duration::from_micros(5) * u32::try_from(body.len()).unwrap();
        prop_assert!(cpu <= cpu_bound, "{} byte body took {cpu:?} of CPU", body.len());
    }
}
