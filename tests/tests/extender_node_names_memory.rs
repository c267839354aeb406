//! `NodeNames` in a filter: a million made-up names are refused while decoding, after the
//! 100,000th, so the request costs what 100,000 names cost; a list at the limit is decoded and
//! filtered within a bounded multiple of its body. Peak memory counted by a global allocator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::json;
use tessera_extender::wire::{ExtenderArgs, MAX_NODE_NAMES};
use tessera_extender::{BindFuture, BindTarget, Binder, Config, ExtenderState};
use tessera_tests::bounds::{Counting, cost_of};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct Binds;

impl Binder for Binds {
    fn bind(&self, _: BindTarget) -> BindFuture<'_> {
        Box::pin(async { Ok(()) })
    }
}

fn body(names: usize) -> Vec<u8> {
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/extender/filter.nodenames.request.json"
    ))
    .unwrap();
    let mut args: serde_json::Value = serde_json::from_str(&fixture).unwrap();
    args["NodeNames"] = json!((0..names).map(|i| format!("node-{i}")).collect::<Vec<_>>());
    serde_json::to_vec(&args).unwrap()
}

/// The heap `work` peaked at above what was live before.
fn peak_of<T>(work: impl FnOnce() -> T) -> (T, usize) {
    let (out, peak, _) = cost_of(work);
    (out, peak)
}

#[test]
fn a_million_node_names_cost_what_the_limit_costs() {
    // One test: the counters are the whole process's.
    let million = body(1_000_000);
    let (decoded, peak) =
        peak_of(|| serde_json::from_slice::<ExtenderArgs<'_>>(&million).map(|_| ()));
    let err = decoded.unwrap_err().to_string();
    assert!(err.contains("more than 100000 node names"), "{err}");
    println!(
        "a {} byte body of 1,000,000 names: refused at a peak of {peak} bytes",
        million.len()
    );
    // 100,000 borrowed names of 24 bytes each, and the pod.
    assert!(peak < 8 << 20, "refusing peaked at {peak} bytes");

    let state = ExtenderState::new(
        Config {
            heartbeat_max_age: None,
            ..Config::default()
        },
        Arc::new(Binds),
    );
    state.set_ready(true);
    let limit = body(MAX_NODE_NAMES);
    let (answer, peak) = peak_of(|| {
        let args: ExtenderArgs<'_> = serde_json::from_slice(&limit).unwrap();
        serde_json::to_vec(&tessera_extender::filter::filter(&state, args)).unwrap()
    });
    let out: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(out["Error"], "", "{}", &out["Error"]);
    println!(
        "a {} byte body of {MAX_NODE_NAMES} names: filtered at a peak of {peak} bytes",
        limit.len()
    );
    assert!(
        peak < 16 * limit.len(),
        "filtering {} bytes peaked at {peak}",
        limit.len()
    );
}
